"""End-to-end: a real `easyflow daemon` process, driven by the real CLI in subprocesses.

Each test starts the daemon in its own EASYFLOW_HOME (with its own easyflow.toml), waits for
outcomes by polling `runs list` / `status` with generous timeouts, and stops it with SIGTERM.
"""

from __future__ import annotations

import signal
import socket
import sqlite3
import textwrap
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from itertools import pairwise

import pytest

from easyflow_cli.core.model import Trigger
from easyflow_cli.runtime.pools import PREFETCH_DEPTH

# The harness is also a plugin: the `daemon` fixture, and the daemon's log in failure reports.
pytest_plugins = ["tests.daemon_harness"]
pytest.register_assert_rewrite("tests.daemon_harness")
from tests.daemon_harness import DaemonHarness, max_overlap, parse_time, wait_for  # noqa: E402

pytestmark = pytest.mark.e2e


def config(*, realtime: int = 2, balanced: int = 1, eco: int = 2, batch_size: int = 1,
           off_peak: str = "", drain_grace: str = "30s", kill_grace: str = "2s") -> str:
    """A daemon config with small pools (quick to start) and eco work never deferred."""
    return f"""
        [pools.real-time]
        workers = {realtime}

        [pools.balanced]
        workers = {balanced}

        [pools.eco]
        workers = {eco}
        batch_size = {batch_size}
        off_peak = "{off_peak}"

        [daemon]
        drain_grace = "{drain_grace}"
        kill_grace = "{kill_grace}"
        """


def seconds(start: str, end: str) -> float:
    return (parse_time(end) - parse_time(start)).total_seconds()


def gated(gate) -> list[str]:
    """A step that runs until the test creates `gate`: no race with a slow box."""
    return ["sh", "-c", f"while [ ! -e {gate} ]; do sleep 0.05; done"]


def active(runs: list[dict]) -> list[dict]:
    return [r for r in runs if r["state"] in ("queued", "running")]


# ---------------------------------------------------------------------- schedules


def test_every_schedule_runs_in_eco_mode(daemon: DaemonHarness):
    daemon.write_config(config())
    daemon.add_workflows(tick=["true"])
    daemon.start()
    daemon.cli("schedule", "add", "tick", "--every", "2s")

    runs = daemon.wait_for_runs(
        lambda rs: sum(r["state"] == "succeeded" for r in rs) >= 2, workflow="tick",
        timeout=20, message="two scheduled runs of tick to succeed")

    done = [r for r in runs if r["state"] == "succeeded"]
    assert [(r["trigger"], r["mode"], r["mode_reason"], r["pool"]) for r in done] == [
        ("schedule", "eco", "schedule", "eco")] * len(done)
    assert all(r["schedule_id"] == done[0]["schedule_id"] for r in done)
    # Fired about every 2 s (not in a burst): consecutive runs are at least ~1 s apart.
    gaps = [seconds(a["enqueued_at"], b["enqueued_at"]) for a, b in pairwise(done)]
    assert all(gap > 1.0 for gap in gaps), gaps
    daemon.stop()


def add_one_shot(daemon: DaemonHarness, workflow: str, lead: float) -> datetime:
    """`schedule add --at` a moment `lead` seconds ahead. A loaded box can take longer than that
    to run the command, which then refuses the moment as past: again, with twice the lead."""
    while True:
        at = datetime.now(UTC) + timedelta(seconds=lead)
        added = daemon.cli("schedule", "add", workflow, "--at", at.isoformat(timespec="seconds"),
                           check=False)
        if added.returncode == 0:
            return at
        assert "is in the past" in added.stderr and lead < 60, added.stderr
        lead *= 2


def test_missed_fires_are_caught_up_once(daemon: DaemonHarness):
    """Schedules that came due while no daemon ran: one `catch-up` run each, not one per slot."""
    daemon.write_config(config())
    daemon.add_workflows(once=["true"], often=["true"])
    at = add_one_shot(daemon, "once", lead=5.0)
    daemon.cli("schedule", "add", "often", "--every", "1s")
    added = time.time()
    # The daemon is down while `once` comes due and ~3 slots of `often` pass.
    wait_for(lambda: time.time() > max(at.timestamp(), added + 3.0) + 0.2, timeout=130,
             message="the schedules' slots to pass")
    daemon.start()

    runs = daemon.wait_for_runs(
        lambda rs: any(r["workflow"] == "once" and r["state"] == "succeeded" for r in rs)
        and any(r["workflow"] == "often" and r["trigger"] == "schedule" for r in rs),
        timeout=60, message="the catch-up of `once` and a regular run of `often`")

    once = [r for r in runs if r["workflow"] == "once"]
    assert [(r["trigger"], r["mode"], r["mode_reason"], r["state"]) for r in once] == [
        ("catch-up", "eco", "schedule", "succeeded")]
    often = [r for r in runs if r["workflow"] == "often"]
    assert [r["trigger"] for r in often].count("catch-up") == 1, often
    assert often[0]["trigger"] == "catch-up"  # the catch-up came first, then regular fires
    daemon.stop()
    # A one-shot schedule that fired never fires again.
    (row,) = [s for s in daemon.cli_json("schedule", "list", "--json") if s["workflow"] == "once"]
    assert row["next_fire_at"] is None


def test_slow_scheduled_runs_are_coalesced(daemon: DaemonHarness):
    """An `--every 1s` schedule of a ~2.5 s workflow never has two runs waiting or running."""
    daemon.write_config(config())
    daemon.add_workflow("slow", ["sleep", "2.5"])
    daemon.start()
    daemon.cli("schedule", "add", "slow", "--every", "1s")

    samples = []

    def second_run_started():
        runs = daemon.runs("slow")
        samples.append(len(active(runs)))
        assert len(active(runs)) <= 1, runs
        return len(runs) >= 2 and runs[1]["started_at"]

    wait_for(second_run_started, timeout=20, message="a second run of `slow` to start")
    assert max(samples) == 1  # the sampling did see a run in flight
    runs = daemon.runs("slow")
    assert all(r["trigger"] == "schedule" for r in runs)
    # The record agrees: each run was enqueued only after the one before it had finished.
    first, second = runs[0], runs[1]
    assert first["state"] == "succeeded"
    assert parse_time(second["enqueued_at"]) >= parse_time(first["finished_at"])


# ---------------------------------------------------------------------- pools


def test_real_time_run_starts_at_once_while_eco_is_saturated(daemon: DaemonHarness, tmp_path):
    daemon.write_config(config(eco=5))
    daemon.add_workflows(heavy=gated(tmp_path / "never"), click=["true"])
    daemon.start(ECO_MAX_WORKERS="2")  # the environment overrides the config's 5
    assert daemon.status()["pools"]["eco"]["size"] == 2

    heavy = daemon.submit_many("heavy", 4, "--mode", "eco")
    assert {(r["mode"], r["mode_reason"]) for r in heavy} == {("eco", "explicit")}
    wait_for(lambda: (lambda s: s["pools"]["eco"]["busy"] == 2 and s["queue"]["eco"] == 2)(
        daemon.status()), timeout=10, message="2 eco runs running and 2 queued")

    click = daemon.submit("click")
    done = daemon.wait_for_state(click["id"], "succeeded", timeout=10)
    assert (done["mode"], done["mode_reason"], done["pool"]) == ("real-time", "manual",
                                                                 "real-time")
    assert seconds(done["enqueued_at"], done["started_at"]) < 1.0, done
    # ...and it did not jump the eco queue: the eco pool was still full when it ran.
    assert daemon.status()["queue"]["eco"] >= 1


def test_eco_pool_never_runs_more_than_its_size(daemon: DaemonHarness, tmp_path):
    daemon.write_config(config(eco=2, batch_size=1))
    times = tmp_path / "times.txt"
    daemon.add_workflow("chunk", daemon.record_step(times, 1.5), execution_mode="eco")
    daemon.start()

    submitted = daemon.submit_many("chunk", 6)
    ids = [r["id"] for r in submitted]
    runs = daemon.wait_for_runs(
        lambda rs: len(rs) == 6 and all(r["state"] == "succeeded" for r in rs), workflow="chunk",
        timeout=30, message="six eco runs to succeed")

    assert {(r["mode"], r["mode_reason"], r["pool"]) for r in runs} == {
        ("eco", "workflow", "eco")}
    assert sorted(r["id"] for r in runs) == ids
    intervals = [tuple(map(float, line.split())) for line in times.read_text().splitlines()]
    assert len(intervals) == 6
    # Two at once, never three: the 6 runs were all queued within well under 1.5 s, so a pool
    # that let more than 2 run would show it here.
    assert max_overlap(intervals) == 2, sorted(intervals)
    assert len({r["worker"] for r in runs}) == 2
    daemon.stop()


def test_eco_worker_claims_waiting_runs_as_one_batch(daemon: DaemonHarness, tmp_path):
    release = tmp_path / "release"
    daemon.write_config(config(eco=1, batch_size=3))
    # The blocker holds the only eco worker until the test says so, however slow the box.
    daemon.add_workflows(blocker=["sh", "-c", f"while [ ! -e {release} ]; do sleep 0.05; done"],
                         small=["sleep", "0.2"])
    daemon.start()

    blocker = daemon.submit("blocker", "--mode", "eco")
    daemon.wait_until_started(blocker["id"])
    # Queued while the only eco worker is busy.
    smalls = daemon.submit_many("small", 3, "--mode", "eco")
    release.touch()

    runs = daemon.wait_for_runs(
        lambda rs: all(r["state"] == "succeeded" for r in rs) and len(rs) == 4, timeout=20,
        message="the blocker and the three small runs to succeed")
    blocker = runs[0]
    small = runs[1:]
    # All three were waiting before the worker became free...
    assert all(parse_time(r["enqueued_at"]) < parse_time(blocker["finished_at"]) for r in small)
    # ...so it claimed them together: one batch, one worker, run back to back in order.
    assert [r["id"] for r in small] == [r["id"] for r in smalls]
    assert len({r["batch_id"] for r in small}) == 1 and small[0]["batch_id"] is not None
    assert small[0]["batch_id"] != blocker["batch_id"]
    assert len({r["claimed_at"] for r in small}) == 1
    assert {r["worker"] for r in runs} == {blocker["worker"]}
    for before, after in pairwise(small):
        assert parse_time(after["started_at"]) >= parse_time(before["finished_at"])
    daemon.stop()


def submit_in_one_go(daemon: DaemonHarness, *names: str) -> list[int]:
    """Queue one manual run of each named workflow in a single transaction, then wake the
    daemon: it finds them all waiting at once (the CLI submits one run per transaction)."""
    from easyflow_cli.core.planning import QueuePolicy, plan_run
    from easyflow_cli.runtime.client import wake
    from easyflow_cli.storage.store import Store

    with Store.open(daemon.home) as store:
        now = datetime.now(UTC)
        rows = [plan_run(store.get_workflow(name), trigger=Trigger.MANUAL, now=now,
                         policy=QueuePolicy()) for name in names]
        ids = list(store.queue.enqueue(rows))
    assert wake(daemon.home)
    return ids


def test_short_runs_are_handed_over_several_at_a_time(daemon: DaemonHarness):
    daemon.write_config(config(realtime=2))
    daemon.add_workflows(quick=["true"])
    daemon.start()
    submit_in_one_go(daemon, "quick")  # the pool learns that its runs are short...
    daemon.wait_for_runs(lambda rs: rs and rs[0]["state"] == "succeeded", timeout=20)
    ids = submit_in_one_go(daemon, *["quick"] * 100)  # ...and hands these out in bulk
    runs = daemon.wait_for_runs(
        lambda rs: len(rs) == 101 and all(r["state"] == "succeeded" for r in rs), timeout=60,
        message="101 quick runs to succeed")
    hand_overs = Counter((r["worker"], r["claimed_at"]) for r in runs if r["id"] in ids)
    assert 1 < max(hand_overs.values()) <= PREFETCH_DEPTH, hand_overs
    assert {r["worker"] for r in runs} == {"real-time-1", "real-time-2"}


def test_runs_held_behind_a_long_run_go_to_a_free_worker(daemon: DaemonHarness, tmp_path):
    gate = tmp_path / "gate"
    daemon.write_config(config(realtime=2))
    daemon.add_workflows(quick=["true"], long=gated(gate))
    daemon.start()
    submit_in_one_go(daemon, "quick")
    daemon.wait_for_runs(lambda rs: rs and rs[0]["state"] == "succeeded", timeout=20)
    # Dealt in turn to the two workers: the long run's worker also gets quick runs 2, 4, 6.
    long, *quick = submit_in_one_go(daemon, "long", *["quick"] * 6)
    runs = daemon.wait_for_runs(
        lambda rs: all(r["state"] == "succeeded" for r in rs if r["id"] in quick), timeout=30,
        message="the quick runs to succeed while the long one runs")
    assert daemon.run(long)["state"] == "running"
    long_worker = daemon.run(long)["worker"]
    assert all(r["worker"] != long_worker and r["error"] is None
               for r in runs if r["id"] in quick), runs
    assert f"worker {long_worker} gave back" in daemon.log_text()
    gate.touch()
    daemon.wait_for_state(long, "succeeded", timeout=20)
    daemon.stop()


def test_a_quiet_daemon_checkpoints_the_write_ahead_log(daemon: DaemonHarness, tmp_path):
    """Once quiet, the daemon copies the log back into the database file itself, so that no
    commit on a run's way has to (only a backstop at 10,000 pages is left to SQLite)."""
    daemon.write_config(config())
    daemon.add_workflows(quick=["true"])
    daemon.start()
    run = daemon.submit("quick")
    daemon.wait_for_state(run["id"], "succeeded")

    def file_alone_has_it() -> bool:
        copy = tmp_path / "copy.db"  # the database file without its -wal: checkpointed rows
        copy.write_bytes((daemon.home / "easyflow.db").read_bytes())
        conn = sqlite3.connect(copy)
        try:
            row = conn.execute("SELECT state FROM runs WHERE id = ?", (run["id"],)).fetchone()
        except sqlite3.DatabaseError:  # copied halfway through the checkpoint's writes
            return False
        finally:
            conn.close()
        return row == ("succeeded",)

    wait_for(file_alone_has_it, timeout=10, message="the finished run in the database file")
    daemon.stop()


# ---------------------------------------------------------------------- off-peak, deadlines


def test_eco_work_waits_for_off_peak_unless_its_deadline_is_near(daemon: DaemonHarness):
    now = datetime.now().astimezone()
    opens = (now + timedelta(hours=2)).replace(second=0, microsecond=0)
    closes = opens + timedelta(hours=1)
    window = f"{opens:%H:%M}-{closes:%H:%M}"  # local time; now is outside it
    daemon.write_config(config(eco=1, off_peak=window))
    daemon.add_workflows(batchy=["true"], report=["true"])
    daemon.start()

    deferred = daemon.submit("batchy", "--mode", "eco")
    submitted = time.monotonic()
    daemon.cli("schedule", "add", "report", "--every", "1s")
    urgent = daemon.submit("batchy", "--mode", "eco", "--deadline", "30m")

    assert (deferred["mode"], deferred["mode_reason"]) == ("eco", "explicit")
    assert parse_time(deferred["not_before"]) == opens
    assert (urgent["mode"], urgent["mode_reason"]) == ("real-time", "promoted")
    assert urgent["not_before"] is None
    done = daemon.wait_for_state(urgent["id"], "succeeded")
    assert done["pool"] == "real-time"

    scheduled = daemon.wait_for_runs(lambda rs: len(rs) >= 1, workflow="report",
                                     message="the schedule to fire")
    # Give the daemon time it would have used to start them (the window is hours away).
    wait_for(lambda: time.monotonic() - submitted > 3.0, timeout=10, message="3 s to pass")
    held = daemon.run(deferred["id"])
    assert (held["state"], held["started_at"], held["claimed_at"]) == ("queued", None, None)
    scheduled = daemon.runs("report")
    # One queued scheduled run (later fires coalesced into it), also waiting for the window.
    assert [(r["trigger"], r["mode"], r["mode_reason"], r["state"]) for r in scheduled] == [
        ("schedule", "eco", "schedule", "queued")]
    assert parse_time(scheduled[0]["not_before"]) == opens
    assert daemon.status()["queue"]["eco"] == 2
    daemon.stop()
    assert daemon.run(deferred["id"])["state"] == "queued"


def test_the_daemons_own_config_decides_when_submitted_eco_work_waits(daemon: DaemonHarness,
                                                                       tmp_path):
    # The daemon runs with a config of its own (systemd's `daemon --config` or
    # $EASYFLOW_CONFIG) that the CLI in a user's shell does not see: the CLI plans eco runs
    # with the window it finds (hours away), the daemon's "" (no window) must win.
    opens = datetime.now().astimezone() + timedelta(hours=2)
    daemon.write_config(config(eco=1, off_peak=f"{opens:%H:%M}-{opens + timedelta(hours=1):%H:%M}"))
    own = tmp_path / "daemon-only.toml"
    own.write_text(textwrap.dedent(config(eco=1, off_peak="")))
    daemon.add_workflows(batchy=["true"])
    daemon.start(EASYFLOW_CONFIG=str(own))

    queued = daemon.submit("batchy", "--mode", "eco")
    assert queued["not_before"] is None  # the record printed is the daemon's plan
    done = daemon.wait_for_state(queued["id"], "succeeded", timeout=20)
    assert done["pool"] == "eco"



def test_a_cli_that_does_not_see_the_daemons_window_plans_by_it(daemon: DaemonHarness,
                                                                 tmp_path):
    # The converse: the daemon's window is hours away, the CLI's config has none. Runs are
    # planned once, by the CLI, with the policy the daemon published: one at a time or ten
    # thousand in one command (whose wake-up is one short line, however many runs it brings).
    opens = (datetime.now().astimezone() + timedelta(hours=2)).replace(second=0, microsecond=0)
    own = tmp_path / "daemon-only.toml"
    own.write_text(textwrap.dedent(config(
        eco=1, off_peak=f"{opens:%H:%M}-{opens + timedelta(hours=1):%H:%M}")))
    daemon.write_config(config(eco=1, off_peak=""))
    daemon.add_workflows(batchy=["true"])
    daemon.start(EASYFLOW_CONFIG=str(own))

    queued = daemon.submit("batchy", "--mode", "eco")
    assert parse_time(queued["not_before"]) == opens
    bulk = daemon.cli("run", "batchy", "--now", "--mode", "eco", "--count", "10000",
                      "--no-wait", timeout=120)
    assert len(bulk.stdout.split()) == 10_000
    waits = {row["not_before"] for row in daemon.peek_runs("batchy")}
    assert {parse_time(wait) for wait in waits} == {opens}
    assert daemon.status()["queue"]["eco"] == 10_001


# ---------------------------------------------------------------------- signals


def test_sighup_reloads_config_and_keeps_work(daemon: DaemonHarness):
    daemon.write_config(config(eco=2))
    # Long enough that both workers are seen busy even when each status call is slow.
    daemon.add_workflow("work", ["sleep", "4"], execution_mode="eco")
    daemon.start()
    assert daemon.status()["pools"]["eco"]["size"] == 2

    before = daemon.submit_many("work", 3)  # two run, one waits
    wait_for(lambda: daemon.status()["pools"]["eco"]["busy"] == 2, timeout=10,
             message="both eco workers to be busy")
    # A new workflow file with its own schedule: `workflow add` tells the daemon to reload.
    daemon.add_workflow("fresh", ["true"], schedules=[{"every": "1s"}])
    daemon.write_config(config(eco=1))
    daemon.send(signal.SIGHUP)

    status = wait_for(lambda: (lambda s: s if s["pools"]["eco"]["size"] == 1 else None)(
        daemon.status()), timeout=10, message="the eco pool to be resized to 1")
    assert status["pid"] == daemon.pid
    runs = daemon.wait_for_runs(
        lambda rs: all(r["state"] == "succeeded" for r in rs if r["workflow"] == "work")
        and any(r["workflow"] == "fresh" and r["state"] == "succeeded" for r in rs),
        timeout=40, message="the earlier runs and a run of the new schedule to succeed")
    work = [r for r in runs if r["workflow"] == "work"]
    assert [r["id"] for r in work] == [r["id"] for r in before]
    fresh = [r for r in runs if r["workflow"] == "fresh"]
    assert fresh[0]["trigger"] == "schedule"
    # The retired worker has gone: one eco worker left.
    wait_for(lambda: len(daemon.status()["pools"]["eco"]["workers"]) == 1, timeout=10,
             message="the retired eco worker to exit")
    daemon.stop()


def test_sigterm_drains_running_runs_and_keeps_the_queue(daemon: DaemonHarness, tmp_path):
    opened, batched, longs = (tmp_path / name for name in ("opened", "batched", "longs"))
    daemon.write_config(config(realtime=1, eco=1, batch_size=3, drain_grace="30s"))
    daemon.add_workflows(long=gated(longs), opener=gated(opened), batched=gated(batched))
    daemon.start()

    # Eco: three runs queued behind the opener are claimed as one batch; the first starts.
    opener = daemon.submit("opener", "--mode", "eco")
    daemon.wait_until_started(opener["id"])
    batch = daemon.submit_many("batched", 3, "--mode", "eco")
    opened.touch()
    first = daemon.wait_until_started(batch[0]["id"])
    # Real-time: one running, two waiting behind it (the pool has one worker).
    running = daemon.submit("long")
    daemon.wait_until_started(running["id"])
    waiting = daemon.submit_many("long", 2)
    runs = {r["id"]: r for r in daemon.runs()}
    assert runs[first["id"]]["state"] == runs[running["id"]]["state"] == "running", runs
    assert first["batch_id"] and {runs[r["id"]]["batch_id"] for r in batch} == {
        first["batch_id"]}

    began = time.monotonic()
    daemon.send(signal.SIGTERM)
    # The running runs end during the grace; nothing else may start.
    wait_for(lambda: "stopping: no new runs" in daemon.log_text(), timeout=10,
             message="the daemon to start draining")
    batched.touch()
    longs.touch()
    assert daemon.wait_exit(20) == 0, daemon.log_tail()
    took = time.monotonic() - began
    assert took < 10, f"took {took:.1f}s: should exit well inside drain_grace (30s)"
    runs = {r["id"]: r for r in daemon.runs()}
    for record in (opener, first, running):
        assert runs[record["id"]]["state"] == "succeeded", runs[record["id"]]
    for record in waiting:
        left = runs[record["id"]]
        assert (left["state"], left["claimed_at"], left["started_at"]) == ("queued", None, None)
    for record in batch[1:]:  # claimed in the batch but never started: back in the queue
        left = runs[record["id"]]
        assert (left["state"], left["started_at"], left["batch_id"]) == ("queued", None, None)
        assert "shutdown" in left["error"], left
    assert "Traceback" not in daemon.log_text()


def test_sigterm_stops_runs_that_outlast_drain_grace(daemon: DaemonHarness):
    daemon.write_config(config(realtime=2, drain_grace="1s", kill_grace="2s"))
    daemon.cli("workflow", "add", str(daemon.workflow_file("forever", ["sleep", "30"])),
               str(daemon.workflow_file("forever-retried", ["sleep", "30"], retries=1)))
    daemon.start()
    plain = daemon.submit("forever")
    retried = daemon.submit("forever-retried")
    daemon.wait_until_started(plain["id"])
    daemon.wait_until_started(retried["id"])

    daemon.send(signal.SIGTERM)
    code = daemon.wait_exit(10)
    assert code == 0, daemon.log_tail()
    # daemon.py `_settle_interrupted`: a started run is failed, unless its workflow may retry
    # it, then it goes back to the queue; either way the error says why.
    stopped = daemon.run(plain["id"])
    assert stopped["state"] == "failed" and "shutdown" in stopped["error"], stopped
    requeued = daemon.run(retried["id"])
    assert requeued["state"] == "queued" and "shutdown" in requeued["error"], requeued
    assert "Traceback" not in daemon.log_text()


class NotifyListener:
    """The service manager's end of NOTIFY_SOCKET: datagrams read in order, each looked at once."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.messages: list[str] = []

    def expect(self, wanted) -> str:
        """The next datagram with a line equal to `wanted` (or for which `wanted(line)` holds)."""
        match = wanted if callable(wanted) else (lambda line: line == wanted)

        def next_match():
            try:
                message = self.sock.recv(65536).decode()
            except TimeoutError:
                return None
            self.messages.append(message)
            return message if any(match(line) for line in message.splitlines()) else None

        return wait_for(next_match, timeout=20, interval=0,
                        message=f"{wanted!r} on NOTIFY_SOCKET (got {self.messages})")


def test_sd_notify_lifecycle(daemon: DaemonHarness, tmp_path):
    daemon.write_config(config())
    daemon.add_workflow("ping", ["sleep", "0.5"])
    path = tmp_path / "notify.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(str(path))
        sock.settimeout(0.2)
        manager = NotifyListener(sock)
        daemon.start(NOTIFY_SOCKET=str(path))

        ready = manager.expect("READY=1").splitlines()
        assert "STATUS=busy: real-time 0/2, balanced 0/1, eco 0/2; queued: real-time 0, " \
               "balanced 0, eco 0" in ready, ready

        daemon.submit("ping")
        manager.expect(lambda line: line.startswith("STATUS=busy: real-time 1/2"))
        manager.expect(lambda line: line.startswith("STATUS=busy: real-time 0/2"))

        daemon.send(signal.SIGHUP)
        reloading = manager.expect("RELOADING=1").splitlines()
        assert any(line.startswith("MONOTONIC_USEC=") for line in reloading), reloading
        manager.expect("READY=1")  # the reload finished

        daemon.stop()
        manager.expect("STOPPING=1")


@pytest.mark.e2e
def test_a_run_due_years_from_now_does_not_stop_the_daemon(daemon):
    """A deadline years away puts the run's promotion past the longest sleep epoll accepts."""
    daemon.write_config("[pools.balanced]\nworkers = 1\n")
    daemon.add_workflows(block=["sleep", "600"], w=["true"])
    daemon.start()
    busy = daemon.submit("block", "--mode", "balanced")
    daemon.wait_until_started(busy["id"])
    far = daemon.submit("w", "--mode", "balanced", "--deadline", "2099-01-01T00:00:00Z")
    time.sleep(0.5)
    assert daemon.proc.poll() is None, daemon.log_tail()
    assert daemon.status()["pid"] == daemon.pid
    assert daemon.run(far["id"])["state"] == "queued"
