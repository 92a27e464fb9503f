"""The daemon driven in-process: a fake clock, fake workers, a real SQLite store.

The fake workers speak the real protocol through a pipe of their own: what the daemon orders
is decoded and kept, what the test has them report is encoded and read by the daemon's loop
exactly as a real worker's report would be. `tick(wait_limit=0)` is one turn of the loop that
never sleeps; the clock moves only when the test moves it.
"""

from __future__ import annotations

import itertools
import json
import os
import shutil
import socket
import sqlite3
import subprocess
import time
from collections.abc import Iterator
from contextlib import closing
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from easyflow_cli.core.model import Mode, Outcome, PoolName, RunState, Trigger
from easyflow_cli.core.offpeak import parse_window
from easyflow_cli.core.paths import run_log_path
from easyflow_cli.core.planning import plan_run
from easyflow_cli.core.spec import ScheduleSpec, WorkflowSpec, parse_workflow_text
from easyflow_cli.core.timeutil import to_iso
from easyflow_cli.runtime.daemon import Daemon, overdue
from easyflow_cli.runtime.daemon.control import IDLE_TIMEOUT_S
from easyflow_cli.runtime.daemon.drain import DrainPhase
from easyflow_cli.runtime.daemon.foreground_watch import CHECK_EVERY_S
from easyflow_cli.runtime.daemon.loop import MAX_SLEEP_S
from easyflow_cli.runtime.daemon.pruning import BATCH_TARGET_S
from easyflow_cli.runtime.daemon.service import QUEUE_COUNT_EVERY_S
from easyflow_cli.runtime.daemon.settlement import SHUTDOWN_NOTE
from easyflow_cli.runtime.daemon.summarizing import CLOSED_AFTER_S
from easyflow_cli.runtime.pools import Pool, PoolWorker
from easyflow_cli.runtime.process_identity import group_of
from easyflow_cli.runtime.protocol import (
    CancelOrder,
    Done,
    Finished,
    Order,
    Ran,
    Ready,
    Refusal,
    Released,
    ReleaseOrder,
    Report,
    RetireOrder,
    RunOrder,
    Started,
    StatusReply,
    Stopping,
    decode_order,
    encode_all,
)
from easyflow_cli.runtime.run_marker import marker_env, new_token
from easyflow_cli.runtime.start_slot import StartSlot, slot_path
from easyflow_cli.scheduling.scheduler import add_schedule, disable_workflow, prime_schedules
from easyflow_cli.storage import summaries
from easyflow_cli.storage.daemon_policy import published_policy
from easyflow_cli.storage.run_queue import RunStart
from easyflow_cli.storage.sqlite_queue import insert_runs
from easyflow_cli.storage.store import Store

NOON = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)  # outside the eco off-peak window below
CONFIG = """
[pools.real-time]
workers = 2
[pools.balanced]
workers = 1
[pools.eco]
workers = 1
batch_size = 1
off_peak = "22:00-06:00"
[daemon]
drain_grace = "10s"
kill_grace = "1s"
"""


class FakeClock:
    def __init__(self, start: datetime) -> None:
        self.wall = start
        self.mono = 1000.0

    def now(self) -> datetime:
        return self.wall

    def monotonic(self) -> float:
        return self.mono

    def advance(self, seconds: float) -> None:
        self.wall += timedelta(seconds=seconds)
        self.mono += seconds

    def step(self, seconds: float) -> None:
        """The wall clock is set (NTP, `date -s`); the monotonic clock runs on."""
        self.wall += timedelta(seconds=seconds)

    def stamp(self, later: float = 0.0) -> float:
        """A worker's report time: seconds since the epoch."""
        return self.wall.timestamp() + later


class FakeWorker(PoolWorker):
    """A worker without a process: it keeps the orders it is sent and reports what the test
    tells it to, through a real pipe the daemon's loop waits on."""

    def __init__(self, pool: Pool, number: int) -> None:
        read_end, self.write_end = os.pipe()
        super().__init__(pool, number, read_end)
        self.fake_pid = 40_000 + 100 * list(Mode).index(pool.mode) + number
        self.orders: list[Order] = []
        self.killed = False
        self.exited = False

    @property
    def pid(self) -> int:
        return self.fake_pid

    def send_line(self, line: bytes) -> bool:
        if self.exited:
            return False
        order = decode_order(line)
        self.orders.append(order)
        # As a real worker answers: what it has not started goes back; it exits once it
        # holds nothing that runs.
        if isinstance(order, ReleaseOrder):
            self.report(Released([a.run_id for a in self.assignments.values()
                                  if not a.started]))
        if isinstance(order, RetireOrder) and not any(a.started
                                                      for a in self.assignments.values()):
            self.exit()
        return True

    def report(self, *reports: Report) -> None:
        os.write(self.write_end, encode_all(list(reports)))

    def exit(self) -> None:
        if not self.exited:
            self.exited = True
            os.close(self.write_end)

    def kill(self) -> None:
        self.killed = True
        self.exit()

    def close_orders(self) -> None:
        self.exit()

    def close(self) -> int | None:
        os.close(self.stdout_fd)
        return -9 if self.killed else 0

    def handed(self) -> list[int]:
        """The run ids handed to it, in order."""
        return [r.id for o in self.orders if isinstance(o, RunOrder) for r in o.runs]


class Harness:
    def __init__(self, home: Path, config: Path, clock: FakeClock) -> None:
        self.clock = clock
        self.workers: list[FakeWorker] = []
        self.daemon = Daemon(home, str(config), clock=clock, spawn=self._spawn)
        self.daemon.start(signals=False)

    def _spawn(self, pool: Pool, number: int) -> FakeWorker:
        worker = FakeWorker(pool, number)
        self.workers.append(worker)
        return worker

    @property
    def db(self):
        return self.daemon.db

    def tick(self, turns: int = 1) -> None:
        for _ in range(turns):
            self.daemon.loop.tick(wait_limit=0)

    def pool(self, mode: Mode) -> list[FakeWorker]:
        return [w for w in self.daemon.pools[mode].workers if isinstance(w, FakeWorker)]

    def holder(self, run_id: int) -> FakeWorker:
        [worker] = [w for w in self.workers if run_id in w.handed()]
        return worker

    def add_workflow(self, name: str, extra: str = "") -> WorkflowSpec:
        spec = parse_workflow_text(f'name = "{name}"\n{extra}\n[[steps]]\nrun = ["true"]\n')
        self.db.save_workflows([spec], self.clock.now())
        return spec

    def submit(self, spec: WorkflowSpec, trigger: Trigger = Trigger.MANUAL, **changes: Any
               ) -> int:
        planned = plan_run(spec, trigger=trigger, now=self.clock.now(),
                           policy=self.daemon._policy())
        return self.db.queue.enqueue([replace(planned, **changes)])[0]

    def record(self, run_id: int) -> dict[str, Any]:
        """The run as `runs show --json` has it."""
        return self.db.queue.get(run_id).to_record()

    def wake(self) -> object:
        """New runs are queued (which ones, the daemon does not need to know)."""
        return self.daemon.control.answer(b'{"op": "wake"}\n')

    def start(self, run_id: int) -> FakeWorker:
        """Wake the daemon for a queued run and have the worker it went to start it."""
        self.wake()
        worker = self.holder(run_id)
        worker.report(Started(run_id, self.clock.stamp()))
        self.tick()
        return worker

    def state(self, run_id: int) -> str:
        return self.record(run_id)["state"]

    def sleep_left(self) -> float | None:
        return self.daemon.loop.time_left()

    def close(self) -> None:
        self.daemon.shutdown()
        for worker in self.workers:
            worker.exit()
            if worker in self.daemon.all_workers():
                os.close(worker.stdout_fd)
        self.daemon.selector.close()


@pytest.fixture
def utc(monkeypatch) -> Iterator[None]:
    """Local time is UTC, so the off-peak window's hours are the fake clock's hours."""
    with monkeypatch.context() as patch:
        patch.setenv("TZ", "UTC")
        time.tzset()
        yield
    time.tzset()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(NOON)


@pytest.fixture
def harness(home, tmp_path, clock, utc) -> Iterator[Harness]:
    config = tmp_path / "easyflow.toml"
    config.write_text(CONFIG)
    harness = Harness(home, config, clock)
    try:
        yield harness
    finally:
        harness.close()


def ok() -> Outcome:
    return Outcome(RunState.SUCCEEDED, exit_code=0)


def test_workers_are_started_warm_and_say_ready(harness):
    assert [len(harness.pool(mode)) for mode in Mode] == [2, 1, 1]
    for worker in harness.workers:
        worker.report(Ready(worker.pid))
    harness.tick()
    status = harness.daemon.status()
    assert isinstance(status, StatusReply) and status.state == "running"
    assert {mode: pool.ready for mode, pool in status.pools.items()} == {
        "real-time": 2, "balanced": 1, "eco": 1}


def test_a_woken_run_goes_to_a_worker_and_its_reports_settle_it(harness, clock):
    spec = harness.add_workflow("noop")
    run_id = harness.submit(spec)
    assert harness.wake() == Done()
    worker = harness.holder(run_id)  # handed over before the wake-up was answered
    assert worker.pool.mode is Mode.REAL_TIME and harness.state(run_id) == "running"
    [order] = [o for o in worker.orders if isinstance(o, RunOrder)]
    assert order.runs[0].log_path.endswith(f"{run_id}.log") and "noop" in order.specs

    worker.report(Started(run_id, clock.stamp()))
    harness.tick()
    assert harness.record(run_id)["started_at"] is not None
    worker.report(Finished(run_id, clock.stamp(0.25), ok()))
    harness.tick()
    run = harness.record(run_id)
    assert (run["state"], run["exit_code"], run["duration_s"]) == ("succeeded", 0, 0.25)
    assert not worker.assignments


def test_a_run_s_end_and_the_claim_of_the_next_for_its_worker_are_one_commit(harness, clock):
    spec = harness.add_workflow("noop")
    first, second, waiting = (harness.submit(spec) for _ in range(3))
    harness.wake()  # a run for each of the two real-time workers; the third waits
    worker = harness.holder(first)
    assert harness.state(waiting) == "queued"
    statements: list[str] = []
    harness.db.conn.set_trace_callback(statements.append)
    worker.report(Ran(first, clock.stamp(), clock.stamp(0.1), ok()))
    harness.tick()
    harness.db.conn.set_trace_callback(None)
    assert harness.state(first) == "succeeded" and harness.state(waiting) == "running"
    assert worker.handed() == [first, waiting]  # sent once committed, in the same wake-up
    assert statements.count("COMMIT") == 1


def test_a_wake_up_over_the_socket_dispatches_once_in_its_turn(harness, monkeypatch):
    spec = harness.add_workflow("noop")
    harness.tick()
    dispatcher = harness.daemon.dispatcher
    dispatches: list[datetime] = []
    dispatch = dispatcher.dispatch
    monkeypatch.setattr(dispatcher, "dispatch", lambda now: (dispatches.append(now), dispatch(now)))
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as client:
        client.connect(str(harness.daemon.control.path))
        run_id = harness.submit(spec)
        client.sendall(b'{"op": "wake"}\n')
        harness.tick()
        assert json.loads(client.recv(4096))["ok"] is True
    assert harness.state(run_id) == "running"
    # The turn's own before it slept, then the wake-up's, which nothing after it needs again.
    assert len(dispatches) == 2


def test_a_failed_run_is_retried_after_its_backoff_by_the_clock(harness, clock):
    spec = harness.add_workflow("flaky", 'retries = 1\nretry_backoff = "30s"')
    run_id = harness.submit(spec)
    harness.wake()
    worker = harness.holder(run_id)
    worker.report(Ran(run_id, clock.stamp(), clock.stamp(0.1),
                      Outcome(RunState.FAILED, exit_code=3)))
    harness.tick(2)
    [retry] = [r.to_record() for r in harness.db.queue.latest() if r.retry_of == run_id]
    assert harness.state(run_id) == "failed"
    assert (retry["state"], retry["attempt"], retry["trigger"]) == ("queued", 2, "retry")
    assert harness.sleep_left() == pytest.approx(30, abs=0.2)  # it sleeps until then

    clock.advance(29)
    harness.tick()
    assert harness.state(retry["id"]) == "queued"
    clock.advance(1.5)
    harness.tick()
    assert harness.state(retry["id"]) == "running"
    assert harness.holder(retry["id"]).pool.mode is Mode.REAL_TIME


def test_a_waiting_run_is_promoted_when_the_clock_reaches_its_promotion_time(harness, clock):
    spec = harness.add_workflow("report")
    run_id = harness.submit(spec, Trigger.SCHEDULE, mode=Mode.ECO,
                            not_before=NOON + timedelta(hours=10),
                            promote_at=NOON + timedelta(hours=1))
    harness.tick()
    assert harness.state(run_id) == "queued"
    assert harness.sleep_left() == pytest.approx(3600, abs=1)

    clock.advance(3600)
    harness.tick()
    run = harness.record(run_id)
    assert (run["state"], run["mode"], run["mode_reason"]) == ("running", "real-time",
                                                                 "promoted")
    assert harness.holder(run_id).pool.mode is Mode.REAL_TIME


def test_a_run_due_years_away_is_slept_towards_a_day_at_a_time(harness, clock):
    spec = harness.add_workflow("someday")
    far = NOON + timedelta(days=3 * 365)
    run_id = harness.submit(spec, Trigger.SCHEDULE, not_before=far, promote_at=far)
    harness.tick(2)
    assert harness.sleep_left() == MAX_SLEEP_S  # epoll refuses a sleep past 24.8 days
    clock.advance(MAX_SLEEP_S)
    harness.tick()
    assert harness.sleep_left() == MAX_SLEEP_S and harness.state(run_id) == "queued"


def test_an_eco_run_waits_for_the_off_peak_window_and_goes_when_it_opens(harness, clock):
    spec = harness.add_workflow("backup")
    run_id = harness.submit(spec, Trigger.SCHEDULE)
    assert harness.record(run_id)["mode"] == "eco"
    harness.wake()
    harness.tick()
    assert harness.state(run_id) == "queued"
    assert harness.sleep_left() == pytest.approx(10 * 3600, abs=1)  # until 22:00

    clock.advance(10 * 3600 - 60)
    harness.tick()
    assert harness.state(run_id) == "queued"
    clock.advance(61)
    harness.tick()
    assert harness.state(run_id) == "running"
    assert harness.holder(run_id).pool.mode is Mode.ECO


def test_drain_phases_advance_by_the_clock(harness, clock):
    spec = harness.add_workflow("long")
    run_id, waiting_id = harness.submit(spec), harness.submit(spec)
    worker = harness.start(run_id)

    harness.daemon.stop_requested = True
    harness.tick(2)
    drain = harness.daemon.drain
    assert drain.phase is DrainPhase.GRACE
    assert isinstance(worker.orders[-1], RetireOrder)
    idle_ones = [w for w in harness.workers if w is not worker]
    assert all(w.exited for w in idle_ones) and harness.daemon.all_workers() == [worker]
    assert harness.state(waiting_id) == "queued"  # another worker held it: never started

    clock.advance(9.9)
    harness.tick()
    assert drain.phase is DrainPhase.GRACE
    clock.advance(0.2)
    harness.tick()
    assert drain.phase is DrainPhase.STOPPING
    assert CancelOrder(run_id) in worker.orders and not worker.killed

    clock.advance(1 + 2 + 0.1)  # kill_grace and the margin for the worker to report
    harness.tick()
    assert drain.phase is DrainPhase.KILLING and worker.killed
    harness.tick()
    assert drain.finished()
    run = harness.record(run_id)
    assert (run["state"], run["error"]) == ("failed", SHUTDOWN_NOTE)


def test_a_run_cancelled_for_the_shutdown_goes_back_to_the_queue_if_it_may_retry(harness,
                                                                                  clock):
    spec = harness.add_workflow("retried", "retries = 2")
    run_id = harness.submit(spec)
    worker = harness.start(run_id)
    harness.daemon.stop_requested = True
    harness.tick(2)
    clock.advance(10.1)
    harness.tick()
    worker.report(Finished(run_id, clock.stamp(), Outcome(RunState.CANCELLED)))
    worker.exit()
    harness.tick(2)
    run = harness.record(run_id)
    assert (run["state"], run["error"]) == ("queued", SHUTDOWN_NOTE + "; re-queued")
    assert harness.daemon.drain.finished()


def test_a_worker_that_dies_mid_run_is_replaced_and_its_run_settled(harness, clock):
    spec = harness.add_workflow("noop")
    started_id, held_id = harness.submit(spec), harness.submit(spec)
    pool = harness.daemon.pools[Mode.REAL_TIME]
    pool.typical_run_s = 0.001  # short runs: a worker holds several
    pool.workers[1].retiring = True  # so both go to the first one
    harness.wake()
    worker = harness.holder(started_id)
    assert harness.holder(held_id) is worker
    worker.report(Started(started_id, clock.stamp()))
    harness.tick()
    worker.exit()
    harness.tick(2)
    failed = harness.record(started_id)
    assert failed["state"] == "failed"
    assert f"worker process {worker.pid} died" in failed["error"]
    assert harness.state(held_id) in ("queued", "running")  # back in line, maybe re-handed
    assert harness.record(held_id)["error"] in (None, "its worker died before it started")
    assert worker not in harness.daemon.all_workers()
    assert len(harness.pool(Mode.REAL_TIME)) == 2 and len(harness.workers) == 5


def test_changes_the_database_refuses_are_kept_and_replayed_in_order(harness, clock):
    spec = harness.add_workflow("noop")
    run_id = harness.submit(spec)
    harness.wake()
    worker = harness.holder(run_id)
    harness.db.conn.execute("PRAGMA query_only = ON")  # every write now fails
    worker.report(Started(run_id, clock.stamp()))
    harness.tick()
    worker.report(Finished(run_id, clock.stamp(0.5), ok()))
    harness.tick()
    recorder = harness.daemon.recorder
    assert not recorder.healthy and len(recorder.backlog) == 2
    with Store.open(harness.daemon.home) as other:  # a client can still write
        later_id = other.queue.enqueue([plan_run(spec, trigger=Trigger.MANUAL, now=clock.now(),
                                                 policy=harness.daemon._policy())])[0]
    assert harness.wake() == Done()
    assert harness.state(later_id) == "queued"  # nothing new starts meanwhile

    harness.db.conn.execute("PRAGMA query_only = OFF")
    clock.advance(0.4)
    harness.tick()
    assert len(recorder.backlog) == 2  # not before its retry time
    clock.advance(0.2)
    harness.tick()
    assert recorder.healthy and not recorder.backlog
    run = harness.record(run_id)
    assert (run["state"], run["duration_s"]) == ("succeeded", 0.5)  # started, then ended
    assert harness.state(later_id) == "running"


@pytest.mark.parametrize("line", [
    b"garbage\n", b"[]\n", b"null\n", b'{"op": "cancel", "id": "1"}\n',
    b'{"op": "cancel", "id": 0}\n', b'{"op": "cancel", "id": 9223372036854775808}\n',
    b'{"op": "launch"}\n', b'{"op": ["wake"]}\n', b'{"op": "wake"\n',
])
def test_malformed_requests_are_refused_and_the_loop_goes_on(harness, line):
    reply = harness.daemon.control.answer(line)
    assert isinstance(reply, Refusal) and reply.error
    harness.tick()
    assert isinstance(harness.daemon.control.answer(b'{"op": "status"}\n'), StatusReply)


def test_cancel_of_a_running_run_is_sent_to_its_worker(harness, clock):
    spec = harness.add_workflow("noop")
    run_id = harness.submit(spec)
    harness.start(run_id)
    answer = harness.daemon.control.answer
    assert answer(f'{{"op": "cancel", "id": {run_id}}}\n'.encode()) == Done("stopping")
    assert CancelOrder(run_id) in harness.holder(run_id).orders
    refusal = answer(b'{"op": "cancel", "id": 999}\n')
    assert isinstance(refusal, Refusal) and "999" in refusal.error
    queued_id = harness.submit(spec, Trigger.SCHEDULE)  # eco, waiting for the night
    assert answer(f'{{"op": "cancel", "id": {queued_id}}}\n'.encode()) == Done("cancelled")


def test_an_idle_connection_is_closed_at_its_timeout_and_the_loop_wakes_for_it(harness, clock):
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as idle:
        idle.connect(str(harness.daemon.control.path))
        idle.setblocking(False)
        harness.tick(2)  # one turn accepts it, the next plans the sleep with it
        assert len(harness.daemon.control.waiting) == 1
        assert harness.sleep_left() == pytest.approx(IDLE_TIMEOUT_S, abs=0.01)

        clock.advance(IDLE_TIMEOUT_S - 0.5)
        harness.tick()
        with pytest.raises(BlockingIOError):
            idle.recv(1)  # still open, nothing said
        clock.advance(0.5)
        harness.tick()
        assert idle.recv(1) == b""  # closed by the daemon
        assert not harness.daemon.control.waiting
        assert harness.sleep_left() is None


def test_a_wake_up_while_draining_is_told_the_daemon_is_stopping(harness):
    spec = harness.add_workflow("late")
    harness.daemon.stop_requested = True
    harness.tick()
    run_id = harness.submit(spec)
    assert harness.wake() == Stopping()
    assert harness.state(run_id) == "queued"  # for the next start


def run_in_a_terminal(harness: Harness, spec: WorkflowSpec, pid: int, claimed_at: datetime
                      ) -> int:
    """A run as `run --now` executes it in the foreground: claimed and started by `pid`."""
    run_id = harness.submit(spec)
    queue = harness.db.queue
    [claimed] = queue.claim_ids([run_id], now=claimed_at, pool=PoolName.FOREGROUND,
                                worker=f"cli:{pid}")
    queue.start([RunStart(run_id, claimed_at, claimed.enqueued_at, pid)])
    return run_id


def a_dead_pid() -> int:
    pid = os.fork()
    if pid == 0:
        os._exit(0)
    os.waitpid(pid, 0)
    return pid


def test_foreground_runs_whose_cli_is_gone_are_settled_on_the_clock(harness, clock):
    spec = harness.add_workflow("terminal")
    harness.tick()  # the first look finds no foreground run: no wake-ups for them
    assert harness.sleep_left() is None
    real_now = datetime.now(UTC)
    dead = run_in_a_terminal(harness, spec, a_dead_pid(), real_now)
    alive = run_in_a_terminal(harness, spec, os.getpid(), real_now)
    # This process started long after that claim: its pid now names a stranger.
    reused = run_in_a_terminal(harness, spec, os.getpid(), real_now - timedelta(days=1))

    clock.advance(CHECK_EVERY_S - 1)
    harness.tick()
    assert [harness.state(i) for i in (dead, alive, reused)] == ["running"] * 3
    clock.advance(1)
    harness.tick()
    assert [harness.state(i) for i in (dead, alive, reused)] == ["failed", "running", "failed"]
    assert "`easyflow run` process" in harness.record(dead)["error"]
    assert harness.sleep_left() == pytest.approx(CHECK_EVERY_S, abs=0.01)  # watching `alive`


def escapee(run_id: int, token: str) -> subprocess.Popen:
    """What a step left behind in a session of its own, carrying its run's mark."""
    return subprocess.Popen(["sleep", "60"], start_new_session=True,
                            env={"PATH": os.defpath, **marker_env(run_id, token)})


def test_a_foreground_run_s_leftovers_are_killed_when_its_cli_is_gone(harness, clock):
    """The step dies with the terminal's process; what it started is killed at settlement:
    its group by the identity recorded, what left it by the run's mark."""
    spec = harness.add_workflow("terminal")
    run_id = run_in_a_terminal(harness, spec, a_dead_pid(), datetime.now(UTC))
    in_group = subprocess.Popen(["sleep", "60"], start_new_session=True)
    harness.db.queue.record_step(run_id, group_of(in_group.pid))
    escaped = escapee(run_id, harness.daemon.token)
    bystander = escapee(run_id + 1, harness.daemon.token)
    try:
        clock.advance(CHECK_EVERY_S)
        harness.tick()
        assert harness.state(run_id) == "failed"
        assert in_group.wait(timeout=5) == -9 and escaped.wait(timeout=5) == -9
        assert bystander.poll() is None
    finally:
        for proc in (in_group, escaped, bystander):
            proc.kill()
            proc.wait()


def test_what_a_dead_worker_s_run_left_running_is_killed(harness, clock):
    spec = harness.add_workflow("noop")
    run_id = harness.submit(spec)
    worker = harness.start(run_id)
    escaped = escapee(run_id, harness.daemon.token)
    other_daemon = escapee(run_id, new_token())
    try:
        worker.exit()
        harness.tick(2)
        assert harness.state(run_id) == "failed"
        assert escaped.wait(timeout=5) == -9
        assert other_daemon.poll() is None
    finally:
        for proc in (escaped, other_daemon):
            proc.kill()
            proc.wait()


def test_a_call_step_its_dead_worker_had_begun_is_never_run_again(harness, clock):
    """The worker noted the run in its start slot and began its call step, then died before
    its "started" report left: the run is failed, not put back in the queue."""
    spec = harness.add_workflow("caller")
    begun_id, held_id = harness.submit(spec), harness.submit(spec)
    pool = harness.daemon.pools[Mode.REAL_TIME]
    pool.typical_run_s = 0.001  # short runs: a worker holds several
    pool.workers[1].retiring = True  # so both go to the first one
    harness.wake()
    worker = harness.holder(begun_id)
    slot = StartSlot(slot_path(harness.daemon.slots, harness.daemon.token, worker.pid))
    slot.begin(begun_id)
    worker.exit()
    harness.tick(2)
    assert harness.state(begun_id) == "failed"
    assert harness.record(begun_id)["started_at"] is not None
    assert harness.state(held_id) in ("queued", "running")  # never begun: back in line
    assert not slot.path.exists()


def test_the_daemon_publishes_its_policy_and_a_new_window_replans_waiting_eco_work(
        harness, clock):
    policy = published_policy(harness.db)
    assert policy == harness.daemon._policy()
    assert policy is not None and policy.off_peak == parse_window("22:00-06:00")
    spec = harness.add_workflow("backup")
    run_id = harness.submit(spec, Trigger.SCHEDULE)
    assert harness.record(run_id)["not_before"] == "2026-11-25T22:00:00.000000Z"

    config = Path(harness.daemon.config_path or "")
    config.write_text(CONFIG.replace("22:00-06:00", "14:00-15:00"))
    harness.daemon.reload()
    assert published_policy(harness.db) == replace(policy, off_peak=parse_window("14:00-15:00"))
    assert harness.record(run_id)["not_before"] == "2026-11-25T14:00:00.000000Z"


def test_a_run_its_worker_does_not_stop_in_time_is_stopped_by_the_daemon(harness, clock):
    """A stopped (SIGSTOP) worker enforces nothing: past the run's timeout, kill grace and a
    margin, the daemon kills it, replaces it, and the run is timed out."""
    spec = harness.add_workflow("stuck", 'timeout = "2s"')
    run_id = harness.submit(spec)
    worker = harness.start(run_id)
    clock.advance(2 + 1)  # its timeout and the kill grace: the worker's own turn
    harness.tick()
    assert not worker.killed
    assert harness.sleep_left() == pytest.approx(overdue.MARGIN_S)
    clock.advance(overdue.MARGIN_S)
    harness.tick(2)
    assert worker.killed and worker not in harness.daemon.all_workers()
    run = harness.record(run_id)
    assert run["state"] == "timed_out"
    assert f"its worker (pid {worker.pid}) did not stop it" in run["error"]
    assert len(harness.pool(Mode.REAL_TIME)) == 2


def test_status_lists_the_runs_running_now_and_the_workers_by_state(harness, clock):
    assert {mode: pool.states for mode, pool in harness.daemon.status().pools.items()} == {
        "real-time": {"starting": 2, "idle": 0, "busy": 0, "retiring": 0},
        "balanced": {"starting": 1, "idle": 0, "busy": 0, "retiring": 0},
        "eco": {"starting": 1, "idle": 0, "busy": 0, "retiring": 0}}
    for worker in harness.workers:
        worker.report(Ready(worker.pid))
    harness.tick()
    run_id = harness.submit(harness.add_workflow("long"))
    harness.start(run_id)
    clock.advance(90)
    status = harness.daemon.status()
    assert status.running == [{"id": run_id, "workflow": "long", "mode": "real-time",
                               "pool": "real-time", "started_at": harness.record(run_id)
                               ["started_at"], "elapsed_s": 90.0}]
    assert status.pools["real-time"].states == {"starting": 0, "idle": 1, "busy": 1,
                                                "retiring": 0}
    assert harness.daemon.live_state().pools == {
        mode: pool.states for mode, pool in status.pools.items()}


def test_a_reload_that_sets_a_metrics_textfile_starts_writing_it(harness, clock, tmp_path):
    from prometheus_client.parser import text_string_to_metric_families

    spec = harness.add_workflow("noop")
    run_id = harness.submit(spec)
    worker = harness.start(run_id)
    worker.report(Finished(run_id, clock.stamp(0.25), ok()))
    harness.tick()
    textfile = tmp_path / "easyflow.prom"
    Path(harness.daemon.config_path or "").write_text(
        CONFIG + f'[metrics]\ntextfile = "{textfile}"\n')
    harness.daemon.reload()
    assert harness.daemon.metrics.config.textfile == textfile
    deadline = time.monotonic() + 20
    while not textfile.exists():
        assert time.monotonic() < deadline, "no textfile written"
        time.sleep(0.01)
    samples = {(s.name, tuple(sorted(s.labels.items()))): s.value
               for family in text_string_to_metric_families(textfile.read_text())
               for s in family.samples}
    assert samples[("easyflow_daemon_up", ())] == 1
    assert samples[("easyflow_runs_total", (("mode", "real-time"), ("state", "succeeded"),
                                            ("workflow", "noop")))] == 1
    assert samples[("easyflow_pool_workers", (("pool", "real-time"), ("state", "starting")))] == 2


def database_file_alone(path: Path, copy: Path) -> sqlite3.Connection:
    """The database file as it is on disk, without any log: what survives the daemon's exit."""
    shutil.copyfile(path, copy)
    return sqlite3.connect(copy)


def test_deleted_log_files_stop_the_daemon_and_what_it_committed_is_copied_back(
        harness, clock, tmp_path):
    spec = harness.add_workflow("noop")
    running = harness.submit(spec)
    worker = harness.start(running)
    path = harness.db.path
    for suffix in ("-wal", "-shm"):
        os.unlink(f"{path}{suffix}")
    queued = harness.submit(spec)  # into the log only the daemon's connection still holds

    reply = harness.wake()
    assert reply == Stopping("the daemon stopped taking work (easyflow.db-wal was deleted; "
                             "easyflow.db-shm was deleted) and restarts on its files")
    assert harness.state(queued) == "queued" and harness.daemon.drain.active
    assert harness.daemon.status().fault == ("easyflow.db-wal was deleted; easyflow.db-shm "
                                             "was deleted")
    worker.report(Finished(running, clock.stamp(0.1), ok()))
    harness.tick()
    worker.exit()  # retired, with its run over
    harness.tick()
    assert harness.daemon.drain.finished()

    harness.daemon.storage.recover(clock.now())  # what its shutdown does
    with closing(database_file_alone(path, tmp_path / "copy.db")) as alone:
        states = dict(alone.execute("SELECT id, state FROM runs").fetchall())
    assert states == {running: "succeeded", queued: "queued"}


def test_a_replaced_database_is_saved_aside_from_the_daemons_connection(harness, clock):
    spec = harness.add_workflow("noop")
    run_id = harness.submit(spec)
    path = harness.db.path
    path.rename(path.with_name("moved.db"))
    path.write_bytes(b"")
    harness.tick()
    assert harness.daemon.storage.fault == "easyflow.db was replaced"
    assert harness.wake() == Stopping("the daemon stopped taking work (easyflow.db was "
                                      "replaced) and restarts on its files")

    harness.daemon.storage.recover(clock.now())
    [saved] = path.parent.glob("easyflow.db.saved-*")
    assert saved.stat().st_mode & 0o777 == 0o600
    with closing(sqlite3.connect(saved)) as copy:
        assert copy.execute("SELECT state FROM runs WHERE id = ?", (run_id,)).fetchone() == (
            "queued",)


def live(harness: Harness, clock: FakeClock, seconds: float) -> None:
    """Let `seconds` of real time pass as the loop would: sleeping until what is due."""
    until = clock.mono + seconds
    while clock.mono < until:
        left = harness.sleep_left()
        clock.advance(min(until - clock.mono, MAX_SLEEP_S if left is None else left))
        harness.tick()


def every_five_minutes(harness: Harness, clock: FakeClock) -> None:
    harness.add_workflow("tick", 'allow_overlap = true\n[[schedules]]\nevery = "5m"\n'
                                 'mode = "balanced"')
    prime_schedules(harness.db, clock.now())
    harness.tick()


def scheduled_runs(harness: Harness) -> list[dict[str, Any]]:
    return [run.to_record() for run in reversed(harness.db.queue.latest())
            if run.schedule_id is not None]


@pytest.mark.parametrize("step", [-3600.0, 2 * 86400.0])
def test_every_schedules_keep_real_intervals_across_a_wall_clock_step(harness, clock, step,
                                                                      caplog):
    every_five_minutes(harness, clock)
    live(harness, clock, 60)
    clock.step(step)
    harness.tick()  # something wakes the daemon right after the step
    live(harness, clock, 29 * 60)
    runs = scheduled_runs(harness)
    assert len(runs) == 6  # at 5, 10, ..., 30 minutes of real time: none silenced, none extra
    assert {run["trigger"] for run in runs} == {"schedule"}
    stamps = [datetime.fromisoformat(run["enqueued_at"]) for run in runs]
    assert stamps[0] == NOON + timedelta(minutes=5, seconds=step)
    assert {later - earlier for earlier, later in itertools.pairwise(stamps)} == {
        timedelta(minutes=5)}
    assert f"the wall clock was stepped by {step:+.0f}s; 1 `every` schedules moved" in caplog.text


def test_runs_changed_by_other_means_are_named_and_the_daemon_serves_on(harness, clock,
                                                                        caplog):
    spec = harness.add_workflow("noop")
    damaged, turbo, good = harness.submit(spec), harness.submit(spec), harness.submit(spec)
    conn = harness.db.conn
    conn.execute("UPDATE runs SET cost_priority = 'bogus' WHERE id = ?", (damaged,))
    conn.execute("UPDATE runs SET mode = 'turbo' WHERE id = ?", (turbo,))
    assert harness.wake() == Done()
    worker = harness.holder(good)  # served past the damaged one, which is settled
    state, error = conn.execute("SELECT state, error FROM runs WHERE id = ?",
                                (damaged,)).fetchone()
    assert state == "failed" and error.startswith(f"run {damaged}: its cost_priority is 'bogus'")
    assert harness.daemon.status().queue == {"real-time": 0, "balanced": 0, "eco": 0}

    worker.report(Started(good, clock.stamp()))
    harness.tick()
    conn.execute("UPDATE runs SET trigger = 'bogus' WHERE id = ?", (good,))
    # A failed run is read again, for its retries.
    worker.report(Finished(good, clock.stamp(0.1), Outcome(RunState.FAILED, exit_code=1)))
    harness.tick(2)
    assert f"run {good}: its trigger is 'bogus', which easyflow never writes" in caplog.text
    assert harness.wake() == Done() and harness.daemon.status().state == "running"


def test_runs_beyond_max_concurrent_wait_and_go_when_one_ends(harness, clock):
    spec = harness.add_workflow("single", "max_concurrent = 1")
    first, second = harness.submit(spec), harness.submit(spec)
    other = harness.submit(harness.add_workflow("other"))
    harness.wake()
    assert (harness.state(first), harness.state(second), harness.state(other)) == (
        "running", "queued", "running")
    worker = harness.holder(first)
    worker.report(Ran(first, clock.stamp(), clock.stamp(0.1), ok()))
    harness.tick(2)  # the report is read and written; the next turn claims
    assert harness.state(second) == "running"


def test_a_disabled_workflow_s_schedule_does_not_fire_nor_wake_the_daemon(harness, clock):
    harness.add_workflow("ticker")
    add_schedule(harness.db, "ticker", ScheduleSpec("every", "10s"), clock.now())
    disable_workflow(harness.db, "ticker")
    harness.tick()
    assert harness.sleep_left() is None or harness.sleep_left() > 10
    clock.advance(30)
    harness.tick()
    assert harness.db.queue.latest(workflow="ticker") == []
# ---------------------------------------------------------------------- pruning


def finished_runs(harness: Harness, workflow: str, count: int, days_ago: float) -> list[int]:
    """Finished runs of a day long ago, each with its log file."""
    end = harness.clock.now() - timedelta(days=days_ago)
    ids = insert_runs(harness.db, RUN_COLUMNS, [
        (workflow, "manual", "eco", "manual", "normal", 1, "succeeded", to_iso(end), to_iso(end),
         to_iso(end), 0.5, "eco") for _ in range(count)])
    for run_id in ids:
        run_log_path(harness.daemon.home, run_id).write_text("output\n")
    return list(ids)


RUN_COLUMNS = ("workflow", "trigger", "mode", "mode_reason", "cost_priority", "priority_rank",
               "state", "enqueued_at", "started_at", "finished_at", "duration_s", "pool")


def remaining(harness: Harness) -> int:
    return harness.db.conn.execute("SELECT count(*) FROM runs").fetchone()[0]


def test_runs_past_keeping_are_pruned_in_quiet_moments_with_their_logs(harness, clock):
    old = finished_runs(harness, "a", 30, days_ago=100)  # the default keeps 90 days
    kept = finished_runs(harness, "a", 4, days_ago=10)
    harness.daemon.pruning.batch = 7  # several batches
    assert harness.daemon.loop._prune_while_quiet() == []
    harness.daemon.pruning.close()  # the log files' thread done
    assert remaining(harness) == 4
    assert not any(run_log_path(harness.daemon.home, i).exists() for i in old)
    assert all(run_log_path(harness.daemon.home, i).exists() for i in kept)
    assert harness.db.conn.execute("SELECT sum(runs) FROM run_rollups").fetchone()[0] == 30
    # Nothing else until the oldest run left is past keeping: the loop sleeps until then.
    assert harness.daemon.pruning.due_at == clock.now() + timedelta(days=80)
    harness.tick()
    assert harness.sleep_left() == MAX_SLEEP_S  # nothing sooner
    clock.advance(80 * 86400)
    assert harness.daemon.pruning.due(clock.now())


def summarized_runs(harness: Harness) -> int:
    return harness.db.conn.execute("SELECT coalesce(sum(runs), 0) FROM run_summaries"
                                   ).fetchone()[0]


def test_hours_that_are_over_are_summarized_in_quiet_moments(harness, clock):
    finished_runs(harness, "a", 12, days_ago=2)
    finished_runs(harness, "a", 3, days_ago=0)  # this hour: not over yet
    summarizing = harness.daemon.summarizing
    summarizing.batch = 5
    assert summarizing.due(clock.now())  # at start
    assert harness.daemon.loop._summarize_while_quiet() == []
    assert summarized_runs(harness) == 12
    assert summarizing.due_at is None  # nothing left: no look until runs finish
    summarizing.look_again(clock.now())  # runs finished
    next_hour = summaries.hour_start(summaries.hour_of(clock.now())) + timedelta(hours=1)
    assert summarizing.due_at == next_hour + timedelta(seconds=CLOSED_AFTER_S)
    clock.advance((summarizing.due_at - clock.now()).total_seconds())
    harness.daemon.loop._summarize_while_quiet()
    assert summarized_runs(harness) == 15


def test_pruned_runs_leave_their_summarized_hours_to_be_summarized_again(harness, clock):
    finished_runs(harness, "a", 30, days_ago=100)
    harness.daemon.loop._summarize_while_quiet()
    assert summarized_runs(harness) == 30
    harness.daemon.loop._prune_while_quiet()
    assert summaries.dirty_hours(harness.db.conn)
    assert harness.daemon.summarizing.due(clock.now())
    harness.daemon.loop._summarize_while_quiet()
    assert summarized_runs(harness) == 0 and not summaries.dirty_hours(harness.db.conn)


def test_summarizing_stops_between_batches_when_something_arrives(harness, clock):
    for days in range(1, 5):
        finished_runs(harness, "a", 3, days_ago=days)
    summarizing = harness.daemon.summarizing
    summarizing.batch = 3
    summarizing.timer = itertools.count(0, BATCH_TARGET_S).__next__
    worker = harness.pool(Mode.ECO)[0]
    worker.report(Ready(worker.pid))
    assert harness.daemon.loop._summarize_while_quiet() != []
    assert summarized_runs(harness) == 3
    assert summarizing.due(clock.now())  # the rest at the next quiet moment


def test_a_workflow_keeps_its_newest_runs_as_keep_runs_says(harness, clock):
    harness.add_workflow("few", "keep_runs = 3")
    runs = finished_runs(harness, "few", 8, days_ago=1)
    finished_runs(harness, "many", 8, days_ago=1)
    harness.daemon.loop._prune_while_quiet()
    assert [r.id for r in harness.db.queue.latest(workflow="few")] == runs[:-4:-1]
    assert len(harness.db.queue.latest(workflow="many")) == 8


def test_pruning_stops_between_batches_when_something_arrives(harness, clock):
    finished_runs(harness, "a", 30, days_ago=100)
    pruning = harness.daemon.pruning
    pruning.batch = 10
    pruning.timer = itertools.count(0, BATCH_TARGET_S).__next__  # each batch takes its target
    worker = harness.pool(Mode.ECO)[0]
    worker.report(Ready(worker.pid))
    assert harness.daemon.loop._prune_while_quiet() != []
    assert remaining(harness) == 20 and pruning.batch == 10
    assert pruning.due(clock.now())  # the rest at the next quiet moment


def test_ending_runs_are_charged_under_the_tariff_loaded_and_a_changed_file_is_read_again(
        harness, clock):
    spec = harness.add_workflow("noop")

    def finished_run() -> int:
        run_id = harness.submit(spec)
        worker = harness.start(run_id)
        worker.report(Finished(run_id, clock.stamp(36.0), ok()))
        harness.tick()
        return run_id

    assert harness.db.queue.charges(finished_run()).tariff_cost is None  # none configured
    config = Path(harness.daemon.config_path or "")
    tariff = config.parent / "tariff.csv"
    tariff.write_text("start,end,value,unit\n2026-11-25T00:00Z,2026-11-26T00:00Z,2,multiplier\n")
    config.write_text(CONFIG + '[costs]\ntariff = "tariff.csv"\n')
    harness.daemon.reload()  # SIGHUP
    # Real-time at $0.10 per worker-hour, twice that, for 36 s: $0.002.
    assert harness.db.queue.charges(finished_run()).tariff_cost == pytest.approx(0.002)
    tariff.write_text("start,end,value,unit\n2026-11-25T00:00Z,2026-11-26T00:00Z,3.0,multiplier\n")
    clock.advance(1.0)  # the file is looked at again a second later, as a run ends
    assert harness.db.queue.charges(finished_run()).tariff_cost in (
        pytest.approx(0.002), pytest.approx(0.003))  # the one read before, until it is read
    reading = harness.daemon.forecasts.tariff.reading  # by a thread, off the loop
    assert reading is not None
    reading.join(timeout=10)
    assert harness.db.queue.charges(finished_run()).tariff_cost == pytest.approx(0.003)


class StatusLines:
    """A systemd notify socket that keeps the status lines it is sent."""

    enabled = True
    watchdog_interval = None

    def __init__(self) -> None:
        self.lines: list[str] = []

    def status(self, line: str) -> bool:
        self.lines.append(line)
        return True


def test_the_status_line_counts_the_queue_again_only_every_few_seconds(harness, clock):
    """Counting reads every waiting run: not at every wake-up, however many wait."""
    harness.daemon.notifier = notifier = StatusLines()  # type: ignore[assignment]
    spec = harness.add_workflow("later", 'execution_mode = "eco"')
    harness.tick()
    assert notifier.lines[-1].endswith("queued: real-time 0, balanced 0, eco 0")
    harness.submit(spec, not_before=clock.now() + timedelta(hours=1))
    harness.wake()
    harness.tick()
    assert notifier.lines[-1].endswith("eco 0")
    clock.advance(QUEUE_COUNT_EVERY_S)
    harness.tick()
    assert notifier.lines[-1].endswith("queued: real-time 0, balanced 0, eco 1")


def test_a_scheduled_eco_run_is_planned_into_the_tariffs_cheapest_window(harness, clock,
                                                                         tmp_path):
    write_tariff(tmp_path, cheapest=5)
    config = Path(harness.daemon.config_path or "")
    config.write_text(CONFIG.replace('off_peak = "22:00-06:00"',
                                     'off_peak = "22:00-06:00"\noptimise = "cost"')
                      + '[costs]\ntariff = "tariff.csv"\n')
    harness.daemon.reload()
    assert published_policy(harness.db).series_path == tmp_path / "tariff.csv"
    harness.add_workflow("backup")
    add_schedule(harness.db, "backup", ScheduleSpec("every", "10s"), clock.now())
    clock.advance(11)
    harness.tick()
    [run] = harness.db.queue.latest(workflow="backup")
    assert run.not_before == NOON + timedelta(hours=5)
    assert run.not_before_reason.startswith("cheapest window ")
    assert run.state is RunState.QUEUED
    write_tariff(tmp_path, cheapest=2)  # a new forecast: the waiting run is planned again
    harness.daemon.reload()
    assert harness.db.queue.get(run.id).not_before == NOON + timedelta(hours=2)


def write_tariff(directory: Path, cheapest: int) -> None:
    """Hourly prices from NOON for a day, the hour `cheapest` hours after NOON the cheapest."""
    hours = [(NOON + timedelta(hours=h), 0.02 if h == cheapest else 0.3) for h in range(24)]
    (directory / "tariff.csv").write_text("start,end,value\n" + "".join(
        f"{to_iso(at)},{to_iso(at + timedelta(hours=1))},{value}\n" for at, value in hours))
