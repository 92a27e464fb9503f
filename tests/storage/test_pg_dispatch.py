"""The coordinator's side of the cluster queue (`PgDispatch`) on a real PostgreSQL: free slots
from live workers, dispatches in the queue's order, and what is settled when a dispatch or a
worker is gone, and cancels of dispatched runs (ended for good, whatever comes late). The
workers here are rows and SQL, as `easyflow worker` writes them."""

import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from easyflow_cli.core.model import CostPriority, Mode, ModeReason, PoolName, RunState, Trigger
from easyflow_cli.core.planning import PlannedRun
from easyflow_cli.storage.run_queue import RunStart

pytest.importorskip("psycopg", reason="the [cluster] extra is not installed")
from easyflow_cli.storage.pg_dispatch import PgDispatch  # noqa: E402
from easyflow_cli.storage.pg_store import PgStore  # noqa: E402
from easyflow_cli.storage.pg_workers import PgWorkers  # noqa: E402

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
LEASE = 30.0


@pytest.fixture
def pg(database_url):
    with PgStore(database_url) as opened:
        yield opened


@pytest.fixture
def dispatch(pg):
    return PgDispatch(pg, pg.queue)


def planned(mode: Mode = Mode.BALANCED, workflow: str = "w", deadline=None) -> PlannedRun:
    return PlannedRun(workflow, Trigger.MANUAL, mode, ModeReason.MANUAL, CostPriority.NORMAL,
                      deadline, NOW)


def register(pg, name: str, pool: PoolName, concurrency: int, *, heartbeat=NOW,
             stopped=None) -> None:
    pg.conn.execute(
        "INSERT INTO workers (name, host, pool, concurrency, pid, started_at, heartbeat_at,"
        " stopped_at) VALUES (%s, 'node-1', %s, %s, 4242, %s, %s, %s)",
        (name, pool.value, concurrency, NOW, heartbeat, stopped))


def accept(pg, token: str, worker: str) -> list[int]:
    """What a worker does with a message: take the runs still carrying its token."""
    return sorted(row[0] for row in pg.conn.execute(
        "UPDATE runs SET worker = %s, host = 'node-1' WHERE dispatch_token = %s"
        " AND worker IS NULL AND state = 'running' RETURNING id", (worker, token)))


def test_free_slots_are_the_live_workers_concurrency_less_their_runs(pg, dispatch):
    assert dispatch.free_slots(PoolName.BALANCED, now=NOW, lease=LEASE) == 0
    register(pg, "a", PoolName.BALANCED, 3)
    register(pg, "silent", PoolName.BALANCED, 5, heartbeat=NOW - timedelta(seconds=LEASE))
    register(pg, "gone", PoolName.BALANCED, 5, stopped=NOW)
    register(pg, "eco", PoolName.ECO, 2)
    assert dispatch.free_slots(PoolName.BALANCED, now=NOW, lease=LEASE) == 3
    pg.queue.enqueue([planned()] * 2)
    dispatch.dispatch(Mode.BALANCED, now=NOW, pool=PoolName.BALANCED, slots=2, batch=False)
    assert dispatch.free_slots(PoolName.BALANCED, now=NOW, lease=LEASE) == 1
    pg.queue.enqueue([planned(Mode.ECO)] * 4)
    dispatch.dispatch(Mode.ECO, now=NOW, pool=PoolName.ECO, slots=4, batch=True)
    assert dispatch.free_slots(PoolName.ECO, now=NOW, lease=LEASE) == 1  # a batch, one slot


def test_a_dispatch_claims_in_the_queues_order_and_names_no_worker(pg, dispatch):
    late, soon, later = pg.queue.enqueue([planned(), planned(deadline=NOW + timedelta(hours=1)),
                                          planned()])
    sent = dispatch.dispatch(Mode.BALANCED, now=NOW, pool=PoolName.BALANCED, slots=2,
                             batch=False)
    assert [d.run_ids for d in sent] == [(soon,), (late,)]
    assert len({d.token for d in sent}) == 2 and all(d.batch_id is None for d in sent)
    run = pg.queue.get(soon)
    assert run.state is RunState.RUNNING and run.worker is None and run.pool is PoolName.BALANCED
    assert pg.queue.get(later).state is RunState.QUEUED


def test_a_dispatch_no_limit_holds_back_is_one_statement_with_a_token_per_run(pg, dispatch):
    late, soon, later = pg.queue.enqueue([planned(), planned(deadline=NOW + timedelta(hours=1)),
                                          planned()])
    sent = dispatch.dispatch(Mode.BALANCED, now=NOW, pool=PoolName.BALANCED, slots=2,
                             batch=False, limited=False)
    assert [d.run_ids for d in sent] == [(soon,), (late,)]
    assert len({d.token for d in sent}) == 2 and all(len(d.token) == 32 for d in sent)
    run = pg.queue.get(soon)
    assert run.state is RunState.RUNNING and run.worker is None and run.claimed_at == NOW
    assert pg.conn.execute("SELECT dispatch_token, dispatched_at FROM runs WHERE id = %s",
                           (soon,)).fetchone() == (sent[0].token, NOW)
    assert accept(pg, sent[1].token, "w1") == [late]
    assert pg.queue.get(later).state is RunState.QUEUED


def test_rooms_read_the_pools_and_the_queue_at_once(pg, dispatch):
    register(pg, "a", PoolName.BALANCED, 3)
    register(pg, "silent", PoolName.ECO, 5, heartbeat=NOW - timedelta(seconds=LEASE))
    later = NOW + timedelta(hours=2)
    pg.queue.enqueue([planned(), planned(Mode.ECO)])
    eco_later = replace(planned(Mode.ECO), not_before=later, promote_at=later)
    pg.queue.enqueue([eco_later])
    dispatch.dispatch(Mode.BALANCED, now=NOW, pool=PoolName.BALANCED, slots=1, batch=False)
    rooms = dispatch.rooms(now=NOW, lease=LEASE)
    assert rooms.free == {Mode.REAL_TIME: 0, Mode.BALANCED: 2, Mode.ECO: 0}
    assert rooms.ready == {Mode.ECO} and not rooms.limited
    assert rooms.next_promotion == later
    pg.conn.execute("INSERT INTO workflows (name, spec_json, max_concurrent)"
                    " VALUES ('w', '{}', 1)")
    assert dispatch.rooms(now=NOW, lease=LEASE).limited


def test_an_eco_batch_is_one_dispatch_with_one_token(pg, dispatch):
    ids = pg.queue.enqueue([planned(Mode.ECO)] * 3)
    [sent] = dispatch.dispatch(Mode.ECO, now=NOW, pool=PoolName.ECO, slots=5, batch=True)
    assert sent.run_ids == tuple(ids) and sent.batch_id
    assert accept(pg, sent.token, "w1") == list(ids)
    assert {pg.queue.get(i).batch_id for i in ids} == {sent.batch_id}


def test_max_concurrent_counts_dispatched_runs(pg, dispatch):
    pg.conn.execute("INSERT INTO workflows (name, spec_json, max_concurrent)"
                    " VALUES ('w', '{}', 1)")
    pg.queue.enqueue([planned()] * 2)
    assert len(dispatch.dispatch(Mode.BALANCED, now=NOW, pool=PoolName.BALANCED, slots=2,
                                 batch=False)) == 1
    assert dispatch.dispatch(Mode.BALANCED, now=NOW, pool=PoolName.BALANCED, slots=2,
                             batch=False) == []


def test_a_token_is_accepted_once(pg, dispatch):
    pg.queue.enqueue([planned()])
    [sent] = dispatch.dispatch(Mode.BALANCED, now=NOW, pool=PoolName.BALANCED, slots=1,
                               batch=False)
    assert accept(pg, sent.token, "w1") == list(sent.run_ids)
    assert accept(pg, sent.token, "w2") == []  # the message came twice


def test_an_unaccepted_dispatch_expires_and_goes_back_in_line(pg, dispatch):
    first, second = pg.queue.enqueue([planned()] * 2)
    [unclaimed] = dispatch.dispatch(Mode.BALANCED, now=NOW, pool=PoolName.BALANCED, slots=1,
                                    batch=False)
    [taken] = dispatch.dispatch(Mode.BALANCED, now=NOW + timedelta(seconds=20),
                                pool=PoolName.BALANCED, slots=1, batch=False)
    accept(pg, taken.token, "w1")
    assert dispatch.expired_dispatches(now=NOW + timedelta(seconds=29), timeout=30) == []
    later = NOW + timedelta(seconds=60)
    assert dispatch.expired_dispatches(now=later, timeout=30) == [first]
    pg.queue.settle_abandoned([first], now=later, note="not accepted", error="-")
    run = pg.queue.get(first)
    assert run.state is RunState.QUEUED and run.pool is None and run.error == "not accepted"
    assert pg.conn.execute("SELECT dispatch_token, dispatched_at, host FROM runs WHERE id = %s",
                           (first,)).fetchone() == (None, None, None)
    assert accept(pg, unclaimed.token, "w2") == []  # too late: the token is gone


def test_a_silent_workers_runs_are_lost(pg, dispatch):
    register(pg, "alive", PoolName.BALANCED, 2)
    register(pg, "silent", PoolName.BALANCED, 2, heartbeat=NOW - timedelta(seconds=LEASE))
    register(pg, "stopped", PoolName.BALANCED, 2, stopped=NOW)
    pg.queue.enqueue([planned()] * 4)
    sent = dispatch.dispatch(Mode.BALANCED, now=NOW, pool=PoolName.BALANCED, slots=4,
                             batch=False)
    for message, worker in zip(sent, ["alive", "silent", "stopped", "unknown"], strict=True):
        accept(pg, message.token, worker)
    lost = dispatch.lost_runs(now=NOW, lease=LEASE)
    assert lost == {"silent": [2], "stopped": [3], "unknown": [4]}


def test_a_lost_started_run_fails_and_an_unstarted_one_goes_back(pg, dispatch):
    register(pg, "w1", PoolName.BALANCED, 2, heartbeat=NOW - timedelta(minutes=5))
    started, unstarted = pg.queue.enqueue([planned()] * 2)
    for message in dispatch.dispatch(Mode.BALANCED, now=NOW, pool=PoolName.BALANCED, slots=2,
                                     batch=False):
        accept(pg, message.token, "w1")
    pg.queue.start([RunStart(started, NOW, NOW, 99)])
    with pg.write():
        lost = dispatch.lost_runs(now=NOW, lease=LEASE)["w1"]
        pg.queue.settle_abandoned(lost, now=NOW, note="back", error="worker w1 went silent")
    assert pg.queue.get(started).state is RunState.FAILED
    assert pg.queue.get(started).error == "worker w1 went silent"
    assert pg.queue.get(unstarted).state is RunState.QUEUED


def test_workers_newest_heartbeat_first(pg, dispatch):
    register(pg, "old", PoolName.ECO, 1, heartbeat=NOW - timedelta(minutes=1))
    register(pg, "new", PoolName.REAL_TIME, 4)
    assert [(w.name, w.pool, w.concurrency) for w in dispatch.workers()] == [
        ("new", PoolName.REAL_TIME, 4), ("old", PoolName.ECO, 1)]


# ---------------------------------------------------------------- cancels of dispatched runs


def test_a_cancelled_dispatch_ends_for_good_and_frees_its_slot(pg, dispatch):
    register(pg, "w1", PoolName.BALANCED, 2)
    unaccepted, accepted = pg.queue.enqueue([planned()] * 2)
    first, second = dispatch.dispatch(Mode.BALANCED, now=NOW, pool=PoolName.BALANCED, slots=2,
                                      batch=False)
    accept(pg, second.token, "w1")
    assert dispatch.free_slots(PoolName.BALANCED, now=NOW, lease=LEASE) == 0
    assert pg.queue.cancel([unaccepted, accepted], now=NOW, error="cancelled by user") == [
        unaccepted]  # the accepted one is its worker's to stop (`request_cancel`)
    run = pg.queue.get(unaccepted)
    assert (run.state, run.error, run.finished_at) == (RunState.CANCELLED, "cancelled by user",
                                                       NOW)
    assert pg.queue.get(accepted).state is RunState.RUNNING
    assert dispatch.free_slots(PoolName.BALANCED, now=NOW, lease=LEASE) == 1
    assert accept(pg, first.token, "w1") == []  # the late message finds nothing
    later = NOW + timedelta(minutes=5)
    assert dispatch.expired_dispatches(now=later, timeout=30) == []
    pg.queue.settle_abandoned([unaccepted], now=later, note="back", error="-")
    assert pg.queue.get(unaccepted).state is RunState.CANCELLED
    assert pg.queue.depths()[Mode.BALANCED] == 0


@pytest.mark.parametrize("started", [False, True])
def test_a_lost_run_whose_cancel_was_asked_ends_cancelled_never_back_nor_retried(pg, dispatch,
                                                                                  started):
    register(pg, "w1", PoolName.BALANCED, 1, heartbeat=NOW - timedelta(minutes=5))
    [run_id] = pg.queue.enqueue([planned()])
    [sent] = dispatch.dispatch(Mode.BALANCED, now=NOW, pool=PoolName.BALANCED, slots=1,
                               batch=False)
    accept(pg, sent.token, "w1")
    if started:
        pg.queue.start([RunStart(run_id, NOW, NOW, 99)])
    assert PgWorkers(pg).request_cancel([run_id], now=NOW) == [run_id]
    with pg.write():
        lost = dispatch.lost_runs(now=NOW, lease=LEASE)["w1"]
        failed = pg.queue.settle_abandoned(lost, now=NOW, note="back", error="silent",
                                           next_attempt=lambda run: planned())
    assert failed == []
    run = pg.queue.get(run_id)
    assert (run.state, run.error) == (RunState.CANCELLED, "cancelled by user")
    assert pg.queue.retried_as(run_id) is None
    assert pg.queue.depths()[Mode.BALANCED] == 0


def test_a_cancel_waits_for_an_expiry_holding_the_run_then_ends_it(pg, dispatch, database_url):
    [run_id] = pg.queue.enqueue([planned()])
    [sent] = dispatch.dispatch(Mode.BALANCED, now=NOW, pool=PoolName.BALANCED, slots=1,
                               batch=False)
    later = NOW + timedelta(minutes=5)
    with PgStore(database_url) as other, ThreadPoolExecutor(1) as pool:
        with pg.write():
            assert dispatch.expired_dispatches(now=later, timeout=30) == [run_id]
            pg.queue.settle_abandoned([run_id], now=later, note="back", error="-")
            cancelled = pool.submit(other.queue.cancel, [run_id], now=later, error="by user")
            wait_for_lock(pg, other)  # the cancel waits for the expiry's transaction
        assert cancelled.result(timeout=10) == [run_id]  # then finds the run back in line
    assert pg.queue.get(run_id).state is RunState.CANCELLED
    assert accept(pg, sent.token, "w1") == []


def wait_for_lock(pg, other, timeout: float = 10.0) -> None:
    """Until `other`'s session waits for a lock (polled, not slept)."""
    pid = other.conn.info.backend_pid
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        row = pg.conn.execute("SELECT wait_event_type FROM pg_stat_activity WHERE pid = %s",
                              (pid,)).fetchone()
        if row and row[0] == "Lock":
            return
        time.sleep(0.01)
    raise AssertionError("the other session never waited for the lock")
