"""A cluster worker's transitions on PostgreSQL (`PgWorkers`): registering and heartbeats, a
dispatch accepted once by its token, cancels asked across machines, logs in chunks."""

import select
from datetime import UTC, datetime, timedelta

import pytest

from easyflow_cli.core.model import PoolName, RunState
from easyflow_cli.core.spec import parse_workflow_text
from easyflow_cli.storage.cluster_queue import CANCEL_CHANNEL, StartAtAccept, WorkerInfo
from tests.cluster_helpers import dispatch_by_hand, queue_runs

pytest.importorskip("psycopg", reason="the [cluster] extra is not installed")
from easyflow_cli.storage.pg_store import PgStore, connect  # noqa: E402
from easyflow_cli.storage.pg_workers import PgWorkers  # noqa: E402

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)


@pytest.fixture
def pg(database_url):
    with PgStore(database_url) as opened:
        yield opened


@pytest.fixture
def workers(pg):
    return PgWorkers(pg)


def info(name: str = "node-a:10", **changes) -> WorkerInfo:
    values = {"name": name, "host": "node-a", "pool": PoolName.ECO, "concurrency": 2,
              "pid": 10, "started_at": NOW, "heartbeat_at": NOW, **changes}
    return WorkerInfo(**values)


def worker_row(pg, name: str) -> tuple:
    return pg.conn.execute("SELECT pid, heartbeat_at, stopped_at FROM workers WHERE name = %s",
                           (name,)).fetchone()


def test_a_restarted_worker_keeps_its_name_and_takes_runs_again(pg, workers):
    workers.register(info())
    workers.stop("node-a:10", now=NOW)
    later = NOW + timedelta(minutes=1)
    workers.register(info(pid=11, started_at=later, heartbeat_at=later))
    assert worker_row(pg, "node-a:10") == (11, later, None)


def test_a_heartbeat_stamps_the_worker_and_names_its_runs_asked_to_stop(pg, workers):
    workers.register(info())
    first, second, other = queue_runs(pg, "w", 3, NOW)
    dispatch = dispatch_by_hand(pg, [first, second], NOW)
    workers.accept(dispatch.token, dispatch.run_ids, worker="node-a:10", host="node-a",
                   pid=10, now=NOW)
    assert workers.request_cancel([second, other], now=NOW) == [second]  # `other` is queued
    beat = NOW + timedelta(seconds=10)
    assert workers.heartbeat("node-a:10", now=beat) == [second]
    assert worker_row(pg, "node-a:10")[1] == beat
    workers.stop("node-a:10", now=beat)
    assert worker_row(pg, "node-a:10")[2] == beat


def test_a_dispatch_is_accepted_once_and_only_with_its_token(pg, workers):
    first, second = queue_runs(pg, "w", 2, NOW)
    dispatch = dispatch_by_hand(pg, [first, second], NOW)
    assert workers.accept("not-the-token", dispatch.run_ids, worker="a", host="h", pid=1,
                          now=NOW) == []
    runs = workers.accept(dispatch.token, [second, first], worker="a", host="h", pid=7,
                          now=NOW)
    assert [(run.id, run.worker, run.pid, run.state) for run in runs] == [
        (second, "a", 7, RunState.RUNNING), (first, "a", 7, RunState.RUNNING)]
    assert workers.accept(dispatch.token, dispatch.run_ids, worker="b", host="h", pid=8,
                          now=NOW) == []  # the message delivered again
    assert workers.holders("a") == {first: 7, second: 7}
    assert pg.conn.execute("SELECT host FROM runs WHERE id = %s", (first,)).fetchone() == ("h",)


def test_a_lone_run_is_started_by_the_statement_that_accepts_it(pg, workers):
    [run_id] = queue_runs(pg, "w", 1, NOW)
    dispatch = dispatch_by_hand(pg, [run_id], NOW)
    enqueued_at = pg.queue.get(run_id).enqueued_at
    at = NOW + timedelta(seconds=2)
    [run] = workers.accept(dispatch.token, [run_id], worker="a", host="h", pid=7, now=at,
                           start=StartAtAccept(off_peak=True))
    assert (run.worker, run.pid, run.started_at) == ("a", 7, at)
    assert run.queue_wait_s == round((at - enqueued_at).total_seconds(), 6)
    assert run.off_peak is True
    assert pg.queue.get(run_id) == run


def test_take_reads_each_runs_cancel_and_workflow_as_it_accepts(pg, workers):
    spec = parse_workflow_text('name = "w"\n[[steps]]\nrun = ["true"]\n', "w.toml")
    pg.save_workflows([spec], NOW)
    plain, cancelled = queue_runs(pg, "w", 2, NOW)
    [gone] = queue_runs(pg, "removed", 1, NOW)
    dispatch = dispatch_by_hand(pg, [plain, cancelled, gone], NOW)
    workers.request_cancel([cancelled], now=NOW)
    taken = workers.take(dispatch.token, dispatch.run_ids, worker="a", host="h", pid=7,
                         now=NOW, start=StartAtAccept())
    assert [(t.run.id, t.cancel_asked, t.spec) for t in taken] == [
        (plain, False, pg.get_workflow("w")), (cancelled, True, pg.get_workflow("w")),
        (gone, False, None)]
    assert [t.run.started_at for t in taken] == [NOW, None, NOW]  # a cancelled run never starts
    assert workers.take(dispatch.token, dispatch.run_ids, worker="b", host="h", pid=8,
                        now=NOW) == []


def test_a_run_put_back_in_line_is_not_accepted_by_its_old_token(pg, workers):
    [run_id] = queue_runs(pg, "w", 1, NOW)
    dispatch = dispatch_by_hand(pg, [run_id], NOW)
    pg.queue.requeue([run_id], "dispatch expired")
    assert workers.accept(dispatch.token, [run_id], worker="a", host="h", pid=1, now=NOW) == []
    assert workers.accept(dispatch.token, [2**70], worker="a", host="h", pid=1, now=NOW) == []


def test_a_cancel_is_announced_to_listeners_when_it_commits(pg, workers, database_url):
    [run_id] = queue_runs(pg, "w", 1, NOW)
    dispatch_by_hand(pg, [run_id], NOW)
    with connect(database_url) as listener:
        listener.execute(f"LISTEN {CANCEL_CHANNEL}")
        assert not workers.cancel_asked(run_id)
        assert workers.request_cancel([run_id], now=NOW) == [run_id]
        select.select([listener.fileno()], [], [], 10)
        assert [n.payload for n in listener.notifies(timeout=1, stop_after=1)] == [str(run_id)]
    assert workers.cancel_asked(run_id)
    assert not workers.cancel_asked(run_id + 1)


def test_log_chunks_come_back_in_order_after_the_one_asked(pg, workers):
    [run_id] = queue_runs(pg, "w", 1, NOW)
    for seq, data in [(1, b"two\n"), (0, b"one\n"), (2, b"\x00\xff")]:
        workers.append_log(run_id, seq, data, now=NOW)
    assert workers.log_chunks(run_id) == [(0, b"one\n"), (1, b"two\n"), (2, b"\x00\xff")]
    assert workers.log_chunks(run_id, after=1) == [(2, b"\x00\xff")]
    assert workers.log_chunks(run_id + 1) == []
