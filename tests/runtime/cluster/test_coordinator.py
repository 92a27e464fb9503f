"""The coordinator in-process, on a real PostgreSQL, with a fake clock, the dispatches it sends
kept in a list, and fake workers that do through SQL what `easyflow worker` does: register,
heartbeat, accept a token, start and finish runs."""

import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta

import pytest

from easyflow_cli.core.model import (
    CostPriority,
    Mode,
    ModeReason,
    Outcome,
    PoolName,
    RunState,
    Trigger,
)
from easyflow_cli.core.planning import PlannedRun
from easyflow_cli.core.spec import ScheduleSpec, parse_workflow_text
from easyflow_cli.core.timeutil import from_iso, to_iso
from easyflow_cli.scheduling.scheduler import add_schedule
from easyflow_cli.storage.run_queue import RunEnd, RunStart
from tests.runtime.test_daemon import FakeClock

pytest.importorskip("psycopg", reason="the [cluster] extra is not installed")
pytest.importorskip("celery", reason="the [cluster] extra is not installed")
from easyflow_cli.runtime.cluster.coordinator import Coordinator  # noqa: E402
from easyflow_cli.storage.pg_leadership import Leadership  # noqa: E402
from easyflow_cli.storage.pg_store import PgStore  # noqa: E402

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
CONFIG = """
[cluster]
database_url = "{url}"
lease = "30s"
dispatch_timeout = "20s"

[pools.eco]
off_peak = "22:00-06:00"
batch_size = 3
"""


class FakeWorker:
    """A worker of one pool, as rows and SQL."""

    def __init__(self, pg: PgStore, name: str, pool: PoolName, concurrency: int,
                 clock: FakeClock) -> None:
        self.pg, self.name, self.clock = pg, name, clock
        pg.conn.execute(
            "INSERT INTO workers (name, host, pool, concurrency, pid, started_at, heartbeat_at)"
            " VALUES (%s, 'node-1', %s, %s, 4242, %s, %s)",
            (name, pool.value, concurrency, clock.now(), clock.now()))

    def heartbeat(self) -> None:
        self.pg.conn.execute("UPDATE workers SET heartbeat_at = %s WHERE name = %s",
                             (self.clock.now(), self.name))

    def accept(self, token: str) -> list[int]:
        return sorted(row[0] for row in self.pg.conn.execute(
            "UPDATE runs SET worker = %s, host = 'node-1' WHERE dispatch_token = %s"
            " AND worker IS NULL AND state = 'running' RETURNING id", (self.name, token)))

    def start(self, run_id: int) -> None:
        self.pg.queue.start([RunStart(run_id, self.clock.now(), NOW, 99)])

    def finish(self, run_id: int) -> None:
        run = self.pg.queue.get(run_id)
        self.pg.queue.finish([RunEnd.of(run, Outcome(RunState.SUCCEEDED, exit_code=0),
                                        self.clock.now())])


@pytest.fixture
def utc(monkeypatch):
    """Local time is UTC, so the off-peak window's hours are the fake clock's hours."""
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


@pytest.fixture
def clock():
    return FakeClock(NOW)


@pytest.fixture
def pg(database_url):
    with PgStore(database_url) as opened:
        for name, extra in (("w", "retries = 1"), ("e", "allow_overlap = true")):
            text = f'name = "{name}"\n{extra}\n[[steps]]\nrun = ["true"]\n'
            opened.save_workflows([parse_workflow_text(text)], NOW)
        yield opened


@pytest.fixture
def sent():
    return []


@contextmanager
def leading(database_url: str, tmp_path, clock, sent) -> Iterator[Coordinator]:
    """A coordinator that took the lock and started (as a standby does when it takes over)."""
    path = tmp_path / "easyflow.toml"
    path.write_text(CONFIG.format(url=database_url))
    active = Coordinator(str(path), clock=clock, send=sent.append)
    with Leadership(database_url) as leadership:
        assert leadership.try_take()
        active.start(leadership)
        try:
            yield active
        finally:
            active.shutdown()
            active.selector.close()


@pytest.fixture
def coordinator(database_url, pg, home, tmp_path, clock, sent, utc):
    with leading(database_url, tmp_path, clock, sent) as active:
        yield active


def enqueue(pg, count: int, mode: Mode = Mode.BALANCED, workflow: str = "w",
            **fields) -> list[int]:
    plan = PlannedRun(workflow, Trigger.MANUAL, mode, ModeReason.MANUAL, CostPriority.NORMAL,
                      None, NOW, **fields)
    return list(pg.queue.enqueue([plan] * count))


def dispatched_ids(sent) -> list[int]:
    return [run_id for dispatch in sent for run_id in dispatch.run_ids]


def test_dispatch_respects_the_free_slots_of_live_workers(coordinator, pg, clock, sent):
    ids = enqueue(pg, 5)
    coordinator.tick(0)
    assert sent == []  # no worker yet
    worker = FakeWorker(pg, "b1", PoolName.BALANCED, 2, clock)
    coordinator.tick(0)
    assert dispatched_ids(sent) == ids[:2]
    assert {d.pool for d in sent} == {PoolName.BALANCED}
    coordinator.tick(0)
    assert len(sent) == 2  # no room left
    [first] = worker.accept(sent[0].token)
    worker.start(first)
    worker.finish(first)
    coordinator.tick(0)
    assert dispatched_ids(sent) == ids[:3]


def test_an_unaccepted_dispatch_goes_back_to_the_queue_after_the_timeout(coordinator, pg,
                                                                         clock, sent):
    worker = FakeWorker(pg, "b1", PoolName.BALANCED, 1, clock)
    [run_id] = enqueue(pg, 1)
    coordinator.tick(0)
    [lost_message] = sent
    clock.advance(15)
    worker.heartbeat()
    coordinator.tick(0)
    assert len(sent) == 1 and pg.queue.get(run_id).state is RunState.RUNNING
    clock.advance(10)  # 25 s since the dispatch: past dispatch_timeout
    worker.heartbeat()
    coordinator.tick(0)
    assert dispatched_ids(sent) == [run_id, run_id]  # back in line, and dispatched again
    assert worker.accept(lost_message.token) == []
    assert worker.accept(sent[1].token) == [run_id]


def test_a_silent_workers_started_run_fails_and_is_retried(coordinator, pg, clock, sent):
    silent = FakeWorker(pg, "b1", PoolName.BALANCED, 2, clock)
    started, unstarted = enqueue(pg, 2)
    coordinator.tick(0)
    for dispatch in sent:
        silent.accept(dispatch.token)
    silent.start(started)
    clock.advance(31)  # no heartbeat for longer than the lease
    coordinator.tick(0)
    failed = pg.queue.get(started)
    assert failed.state is RunState.FAILED and "b1 stopped heartbeating" in failed.error
    retry = pg.queue.retried_as(started)
    assert retry is not None and retry.attempt == 2 and retry.state is RunState.QUEUED
    assert pg.queue.get(unstarted).state is RunState.QUEUED  # never started: back in line
    assert len(sent) == 2  # no live worker: nothing more is sent
    FakeWorker(pg, "b2", PoolName.BALANCED, 2, clock)
    coordinator.tick(0)
    assert sorted(dispatched_ids(sent[2:])) == [unstarted, retry.id]


def test_a_promoted_run_overtakes_older_balanced_runs(coordinator, pg, clock, sent):
    FakeWorker(pg, "b1", PoolName.BALANCED, 1, clock)
    FakeWorker(pg, "r1", PoolName.REAL_TIME, 1, clock)
    older = enqueue(pg, 3)
    [urgent] = enqueue(pg, 1, promote_at=NOW + timedelta(seconds=10))
    coordinator.tick(0)
    assert dispatched_ids(sent) == [older[0]]
    clock.advance(11)
    coordinator.tick(0)
    assert dispatched_ids(sent) == [older[0], urgent]
    assert sent[1].mode is Mode.REAL_TIME and sent[1].pool is PoolName.REAL_TIME
    assert pg.queue.get(urgent).mode_reason.value == "promoted"
    assert [pg.queue.get(i).state for i in older[1:]] == [RunState.QUEUED] * 2


def test_scheduled_eco_runs_wait_for_their_window_then_go_in_batches(coordinator, pg, clock,
                                                                      sent):
    worker = FakeWorker(pg, "e1", PoolName.ECO, 1, clock)
    add_schedule(pg, "e", ScheduleSpec("every", "10m"), NOW)
    for _ in range(4):
        clock.advance(600)
        worker.heartbeat()
        coordinator.tick(0)
    waiting = pg.queue.queued_ids("e")
    assert len(waiting) == 4 and sent == []
    window = pg.queue.get(waiting[0]).not_before
    assert window == datetime(2026, 11, 25, 22, 0, tzinfo=UTC)
    assert coordinator._sleep_seconds(clock.now()) <= (window - clock.now()).total_seconds()
    clock.advance((window - clock.now()).total_seconds())
    worker.heartbeat()
    coordinator.tick(0)
    [batch] = sent  # one free eco slot: one batch of up to batch_size runs
    assert batch.mode is Mode.ECO and batch.batch_id and list(batch.run_ids) == waiting[:3]


def test_a_schedule_a_command_adds_elsewhere_is_taken_up_at_once(coordinator, pg, clock, sent):
    worker = FakeWorker(pg, "b1", PoolName.BALANCED, 1, clock)
    coordinator.tick(0)
    # As `workflow add` leaves a file's new schedule before it plans its first fire.
    with pg.write():
        schedule_id = pg.insert_schedule("e", ScheduleSpec("every", "1m", mode=Mode.BALANCED),
                                         origin="file", now_iso=to_iso(clock.now()))
    coordinator.tick(10)  # woken by the change: the schedule is planned
    assert from_iso(pg.get_schedule(schedule_id)["next_fire_at"]) == NOW + timedelta(minutes=1)
    assert coordinator.schedules.next_due() == NOW + timedelta(minutes=1)
    clock.advance(60)
    worker.heartbeat()
    coordinator.tick(0)
    [fired] = sent
    assert pg.queue.get(fired.run_ids[0]).schedule_id == schedule_id


def test_a_schedule_added_while_no_coordinator_ran_is_planned_when_one_starts(
        database_url, pg, home, tmp_path, clock, sent, utc):
    with pg.write():  # no coordinator hears it
        schedule_id = pg.insert_schedule("e", ScheduleSpec("every", "1m"), origin="file",
                                         now_iso=to_iso(NOW))
    with leading(database_url, tmp_path, clock, sent) as active:
        assert active.schedules.next_due() == NOW + timedelta(minutes=1)
    assert pg.get_schedule(schedule_id)["next_fire_at"] is not None


def test_a_coordinator_that_loses_its_lock_stops_with_an_error(coordinator, database_url,
                                                               postgres_server):
    import psycopg

    pid = coordinator.leadership.conn.info.backend_pid
    with psycopg.connect(postgres_server.url(), autocommit=True) as admin:
        admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
    for _ in range(20):  # the server's goodbye makes the lock's connection readable
        coordinator.tick(0.5)
        if coordinator.stop_requested:
            break
    assert coordinator.stop_requested and coordinator.exit_code == 1


def test_a_settlement_undone_by_a_deadlock_is_tried_again_at_the_next_look(coordinator, pg,
                                                                           clock, sent,
                                                                           monkeypatch):
    import psycopg

    FakeWorker(pg, "b1", PoolName.BALANCED, 1, clock)
    [run_id] = enqueue(pg, 1)
    coordinator.tick(0)
    clock.advance(25)  # past dispatch_timeout, never accepted; the worker's heartbeat is old
    real = coordinator.queue.expired_dispatches

    def deadlocked(**kwargs):
        raise psycopg.errors.DeadlockDetected("deadlock detected")

    monkeypatch.setattr(coordinator.queue, "expired_dispatches", deadlocked)
    coordinator.tick(0)
    assert pg.queue.get(run_id).state is RunState.RUNNING  # nothing settled, nothing broken
    monkeypatch.setattr(coordinator.queue, "expired_dispatches", real)
    clock.advance(coordinator.leases.period)
    coordinator.tick(0)
    assert pg.queue.get(run_id).state is RunState.QUEUED  # the worker is silent: none to send to


def test_a_dispatch_the_broker_refused_expires_and_is_sent_again(coordinator, pg, clock, sent):
    worker = FakeWorker(pg, "b1", PoolName.BALANCED, 1, clock)
    [run_id] = enqueue(pg, 1)

    def broker_down(dispatch):
        raise ConnectionError("Error 111 connecting to queue.internal:6379")

    coordinator.dispatcher.send = broker_down
    coordinator.tick(0)
    assert pg.queue.get(run_id).state is RunState.RUNNING  # committed before it was sent
    coordinator.dispatcher.send = sent.append
    clock.advance(25)
    worker.heartbeat()
    coordinator.tick(0)
    [again] = sent
    assert again.run_ids == (run_id,) and worker.accept(again.token) == [run_id]


def test_a_reload_applies_the_new_timeouts_and_batch_size_on_the_same_database(
        coordinator, pg, clock, sent, database_url):
    path = coordinator.config_path
    new = CONFIG.format(url=database_url).replace('"20s"', '"9s"').replace("= 3", "= 2")
    with open(path, "w") as file:
        file.write(new.replace(database_url, "postgresql://elsewhere/easyflow"))
    coordinator.reload_requested = True
    coordinator.tick(0)
    assert coordinator.leases.cluster.dispatch_timeout == 9
    assert coordinator.leases.cluster.database_url == database_url  # kept: restart to move
    assert coordinator.dispatcher.config.pool(Mode.ECO).batch_size == 2
