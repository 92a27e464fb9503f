"""The PostgreSQL store: migrations, transactions, and workflows and schedules read back in
the very shapes the SQLite store gives (the CLI and the daemon render either)."""

import threading
from datetime import UTC, datetime, timedelta

import pytest

from easyflow_cli.core.errors import EasyflowError, NotFound
from easyflow_cli.core.model import Outcome, PoolName, RunState, Trigger
from easyflow_cli.core.offpeak import parse_window
from easyflow_cli.core.planning import QueuePolicy, plan_run
from easyflow_cli.core.spec import parse_workflow_text
from easyflow_cli.core.timeutil import to_iso
from easyflow_cli.storage.pg_schema import MIGRATIONS
from easyflow_cli.storage.run_queue import RunEnd
from easyflow_cli.storage.store import Store

pytest.importorskip("psycopg", reason="the [cluster] extra is not installed")
from easyflow_cli.storage.pg_store import PgStore  # noqa: E402

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
WF = 'name = "a"\nkeep_runs = 3\n[[steps]]\nrun = ["true"]\n[[schedules]]\ncron = "0 2 * * *"\n'


@pytest.fixture
def pg(database_url):
    with PgStore(database_url) as opened:
        yield opened


def test_a_new_schema_is_migrated_once_even_by_two_at_once(database_url):
    stores: list[PgStore] = []
    threads = [threading.Thread(target=lambda: stores.append(PgStore(database_url)))
               for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert [store.schema_version for store in stores] == [len(MIGRATIONS)] * 2
    for store in stores:
        store.close()
    with PgStore(database_url) as again:
        assert again.conn.execute("SELECT count(*) FROM easyflow_schema").fetchone()[0] == 1


def test_save_get_remove_workflow(pg):
    spec = parse_workflow_text(WF)
    pg.save_workflows([spec], NOW)
    assert pg.get_workflow("a") == pg.all_workflows()[0] == spec
    assert pg.workflow_spec_dict("a")[0]["steps"] == [{"name": "step-1", "run": ["true"]}]
    assert pg.keep_runs() == {"a": 3}
    assert len(pg.schedule_rows("a")) == 1
    pg.remove_workflow("a", NOW)
    with pytest.raises(NotFound, match="unknown workflow 'a'"):
        pg.get_workflow("a")
    assert pg.schedule_rows() == []


def test_removing_a_workflow_cancels_its_queued_runs_only(pg):
    specs = [parse_workflow_text(WF), parse_workflow_text(WF.replace('"a"', '"b"'))]
    pg.save_workflows(specs, NOW)
    plans = [plan_run(spec, trigger=Trigger.MANUAL, now=NOW, policy=QueuePolicy())
             for spec in (specs[0], specs[0], specs[0], specs[1])]
    queued, running, done, other = pg.queue.enqueue(plans)
    pg.queue.claim_ids([running, done], now=NOW, pool=PoolName.FOREGROUND, worker="cli:1")
    pg.queue.finish([RunEnd(done, Outcome(RunState.SUCCEEDED, 0), NOW, NOW)])
    assert pg.remove_workflow("a", NOW) == 1
    assert [pg.queue.get(i).state for i in (queued, running, done, other)] == [
        RunState.CANCELLED, RunState.RUNNING, RunState.SUCCEEDED, RunState.QUEUED]


def test_a_failed_write_leaves_nothing_and_nested_writes_are_one(pg):
    good = parse_workflow_text(WF)
    bad = parse_workflow_text(WF.replace('"a"', '"b"'))
    object.__setattr__(bad, "description", object())  # not storable: the insert fails
    with pytest.raises(Exception):  # noqa: B017
        pg.save_workflows([good, bad], NOW)
    assert pg.workflow_rows() == []
    with pytest.raises(RuntimeError), pg.write():
        pg.save_workflows([good], NOW)
        with pg.write():
            pg.set_workflow_disabled("a", True)
        raise RuntimeError("fail after the inner write")
    assert pg.workflow_rows() == []


def test_workflows_and_schedules_read_back_as_the_sqlite_store_gives_them(pg, home):
    with Store.open(home) as lite:
        for store in (lite, pg):
            changes(store)
        for read in (lambda s: s.workflow_rows(), lambda s: s.schedule_rows(),
                     lambda s: s.get_schedule(1), lambda s: s.schedule_specs("a"),
                     lambda s: s.due_schedules(to_iso(NOW + timedelta(hours=2))),
                     lambda s: s.pending_schedules("cron"), lambda s: s.upcoming_schedules(5),
                     lambda s: s.unplanned_schedules(), lambda s: s.workflow_disabled("b")):
            assert read(pg) == read(lite)


def changes(store) -> None:
    """The same calls on either backend: workflows, schedules added, fired, paused."""
    store.save_workflows([parse_workflow_text(WF),
                          parse_workflow_text(WF.replace('"a"', '"b"'))], NOW)
    store.set_workflow_disabled("b", True)
    [first] = store.schedule_rows("a")
    store.record_schedule_fire(first["id"], fired_at=to_iso(NOW),
                               next_fire_at=to_iso(NOW + timedelta(hours=1)))
    spec = parse_workflow_text(WF.replace("0 2", "0 5")).schedules[0]
    with store.write():
        added = store.insert_schedule("a", spec, origin="cli", now_iso=to_iso(NOW))
    store.set_schedule_state(added, paused=True, next_fire_at=None)
    store.reanchor_schedule(3, created_at=to_iso(NOW), next_fire_at=to_iso(NOW))
    with pytest.raises(NotFound):
        store.get_schedule(2**70)


def test_the_daemon_policy_reads_back_as_published(pg, home):
    from easyflow_cli.storage.daemon_policy import publish_policy, published_policy

    assert pg.published_policy() is None
    policy = QueuePolicy(timedelta(minutes=20), parse_window("22:00-06:00"))
    with Store.open(home) as lite:
        for publish in (lambda: publish_policy(lite, policy, NOW),
                        lambda: pg.publish_policy(policy, NOW)):
            publish()
            publish()  # published again on reload: still one row
        assert pg.published_policy() == published_policy(lite) == policy


def test_an_unreachable_database_is_one_line_without_its_password():
    from tests.servers import free_port

    url = f"postgresql://easyflow:s3cret@127.0.0.1:{free_port()}/easyflow"
    with pytest.raises(EasyflowError) as caught:
        PgStore(url)
    message = str(caught.value)
    assert message.startswith(f"cannot reach the database postgresql://easyflow:***@127.0.0.1:"
                              f"{url.split(':')[3]}")
    assert "s3cret" not in message and "\n" not in message


def test_connections_are_named_for_the_operator(pg):
    assert pg.conn.execute("SELECT current_setting('application_name')").fetchone() == (
        "easyflow",)
