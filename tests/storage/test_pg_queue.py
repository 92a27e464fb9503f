"""What only the PostgreSQL backend promises, beyond the queue's contract: claims never wait
for one another, times are instants whatever the session's zone, and runs changed by other
means are named as the SQLite backend names them."""

import logging
from datetime import UTC, datetime

import pytest

from easyflow_cli.core.errors import DamagedRow
from easyflow_cli.core.model import CostPriority, Mode, ModeReason, PoolName, Trigger
from easyflow_cli.core.planning import PlannedRun
from easyflow_cli.storage.run_queue import Hand

pytest.importorskip("psycopg", reason="the [cluster] extra is not installed")
import psycopg  # noqa: E402

from easyflow_cli.storage.pg_store import PgStore  # noqa: E402

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)


@pytest.fixture
def pg(database_url):
    with PgStore(database_url) as opened:
        yield opened


def queue_three(store: PgStore) -> list[int]:
    planned = PlannedRun("w", Trigger.MANUAL, Mode.REAL_TIME, ModeReason.MANUAL,
                         CostPriority.NORMAL, None, NOW)
    return list(store.queue.enqueue([planned] * 3))


def claim(store: PgStore, room: int = 1) -> list[int]:
    [runs] = store.queue.claim(Mode.REAL_TIME, now=NOW, pool=PoolName.REAL_TIME,
                               hands=[Hand("w", room)])
    return [run.id for run in runs]


def test_a_claim_takes_the_next_run_instead_of_waiting_for_one_held(pg, database_url):
    first, second, _ = queue_three(pg)
    with PgStore(database_url) as other:
        other.conn.execute("SET lock_timeout = '5s'")  # waiting would fail, not hang
        with pg.write():
            assert claim(pg) == [first]  # held, uncommitted, to the end of this block
            assert claim(other) == [second]
        assert claim(other, room=3) == [3]


def test_a_lone_run_waits_for_a_batch_being_queued_so_its_ids_stay_consecutive(pg,
                                                                              database_url):
    planned = PlannedRun("w", Trigger.MANUAL, Mode.REAL_TIME, ModeReason.MANUAL,
                         CostPriority.NORMAL, None, NOW)
    with PgStore(database_url) as other:
        other.conn.execute("SET lock_timeout = '200ms'")  # waiting fails instead of hanging
        with pg.write():
            pg.lock("enqueue")  # as a batch's `enqueue` holds it while it takes its ids
            with pytest.raises(psycopg.errors.LockNotAvailable):
                other.queue.enqueue([planned])
        assert other.queue.enqueue([planned]) == range(1, 2)  # the failed one queued nothing


def test_times_are_instants_whatever_the_sessions_zone(pg):
    pg.conn.execute("SET TIME ZONE 'Pacific/Auckland'")
    [run_id, *_] = queue_three(pg)
    run = pg.queue.get(run_id)
    assert run.enqueued_at == NOW
    assert run.to_record()["enqueued_at"] == "2026-11-25T12:00:00.000000Z"


@pytest.mark.parametrize(("column", "value"), [
    ("state", "bogus"), ("mode", "turbo"), ("trigger", "cron"), ("mode_reason", "x\x1b[2J"),
    ("cost_priority", "urgent"), ("pool", "gpu"),
])
def test_reading_a_changed_run_names_it_and_its_field(pg, column, value):
    run_id = queue_three(pg)[1]
    pg.conn.execute(f"UPDATE runs SET {column} = %s WHERE id = %s", (value, run_id))
    with pytest.raises(DamagedRow) as raised:
        pg.queue.get(run_id)
    assert str(raised.value) == (
        f"run {run_id}: its {column} is {value!r}, which easyflow never writes (the database "
        "was changed by other means); correct or delete that run")


def test_a_claim_settles_a_changed_run_as_failed_and_serves_the_others(pg, caplog):
    first, second, third = queue_three(pg)
    pg.conn.execute("UPDATE runs SET cost_priority = 'urgent' WHERE id = %s", (first,))
    with caplog.at_level(logging.ERROR):
        assert claim(pg, room=2) == [second]  # the changed one took the other place
    assert claim(pg, room=2) == [third]
    state, error = pg.conn.execute("SELECT state, error FROM runs WHERE id = %s",
                                   (first,)).fetchone()
    assert state == "failed" and error.startswith(f"run {first}: its cost_priority is 'urgent'")
    assert f"run {first}: its cost_priority is 'urgent'" in caplog.text
