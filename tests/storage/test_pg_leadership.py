"""The coordinator lock: one holder per schema, released when its connection ends however the
process holding it ended."""

import time

import pytest

pytest.importorskip("psycopg", reason="the [cluster] extra is not installed")
import psycopg  # noqa: E402

from easyflow_cli.storage.pg_leadership import Leadership  # noqa: E402


def taken(standby: Leadership, timeout: float = 20.0) -> bool:
    """As a standby asks: the server releases a closed session's lock once its backend has
    read the goodbye, a moment later on a busy box."""
    deadline = time.monotonic() + timeout
    while not standby.try_take():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def test_one_coordinator_leads_and_the_next_takes_over_when_it_is_gone(database_url):
    with Leadership(database_url) as active, Leadership(database_url) as standby:
        assert active.try_take() and active.still_held()
        assert not standby.try_take() and not standby.still_held()
        active.close()
        assert taken(standby)


def test_another_schema_has_a_coordinator_of_its_own(database_url, postgres_server):
    with psycopg.connect(postgres_server.url(), autocommit=True) as conn:
        conn.execute("CREATE SCHEMA other_team")
    other = postgres_server.url(options="-csearch_path%3Dother_team")
    with Leadership(database_url) as ours, Leadership(other) as theirs:
        assert ours.try_take() and theirs.try_take()


def test_a_lock_whose_connection_ended_is_known_lost(database_url, postgres_server):
    with Leadership(database_url) as active, Leadership(database_url) as standby:
        assert active.try_take()
        pid = active.conn.info.backend_pid
        with psycopg.connect(postgres_server.url(), autocommit=True) as admin:
            admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
        assert not active.still_held()
        assert taken(standby)


def test_the_holder_is_found_by_the_sql_status_reads(database_url):
    from easyflow_cli.storage.cluster_queue import COORDINATOR_HOLDER_SQL, COORDINATOR_LOCK

    with Leadership(database_url) as active, Leadership(database_url) as reader:
        assert reader.conn.execute(COORDINATOR_HOLDER_SQL, (COORDINATOR_LOCK,)).fetchall() == []
        active.try_take()
        holder = reader.conn.execute(COORDINATOR_HOLDER_SQL, (COORDINATOR_LOCK,)).fetchall()
        assert holder == [(active.conn.info.backend_pid,)]
