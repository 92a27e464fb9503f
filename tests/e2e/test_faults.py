"""Fault injection against a real daemon: each test breaks something and checks the outcome.

kill -9 at random moments, a concurrent flood of CLI submissions, a database that cannot be
written, a step printing far more than the log cap, steps that ignore SIGTERM, and SIGTERM
with work in flight. The longer soak variants run with `EASYFLOW_SOAK=1`.
"""

from __future__ import annotations

import contextlib
import errno
import itertools
import json
import os
import random
import re
import resource
import signal
import socket
import sqlite3
import subprocess
import sys
import time
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta
from functools import partial
from pathlib import Path

import pytest

pytest_plugins = ["tests.daemon_harness"]
pytest.register_assert_rewrite("tests.daemon_harness")
from easyflow_cli.core.model import Mode, Trigger  # noqa: E402
from easyflow_cli.core.planning import QueuePolicy, plan_run  # noqa: E402
from easyflow_cli.core.timeutil import utcnow  # noqa: E402
from easyflow_cli.runtime.client import connect, daemon_status, wake  # noqa: E402
from easyflow_cli.storage.store import Store  # noqa: E402
from tests.conftest import easyflow_command  # noqa: E402
from tests.daemon_harness import CLI_TIMEOUT, DaemonHarness, wait_for  # noqa: E402

pytestmark = pytest.mark.e2e

SOAK = os.environ.get("EASYFLOW_SOAK") == "1"
FINISHED = ("succeeded", "failed", "timed_out", "cancelled")


def config(*, realtime: int = 3, balanced: int = 2, eco: int = 2, batch_size: int = 4,
           drain_grace: str = "5s", kill_grace: str = "1s", log_max_bytes: int = 1 << 20,
           timeout: str = "1m") -> str:
    return f"""
        [pools.real-time]
        workers = {realtime}
        timeout = "{timeout}"

        [pools.balanced]
        workers = {balanced}
        timeout = "{timeout}"

        [pools.eco]
        workers = {eco}
        batch_size = {batch_size}
        off_peak = ""
        timeout = "{timeout}"

        [daemon]
        drain_grace = "{drain_grace}"
        kill_grace = "{kill_grace}"

        [logs]
        max_bytes = {log_max_bytes}
        """


# ---------------------------------------------------------------------- processes


def tagged_processes(tag: str) -> set[int]:
    """Live (not zombie) processes whose environment carries FAULT_TAG=tag."""
    needle = f"FAULT_TAG={tag}".encode()
    found = set()
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/environ", "rb") as env:
                if needle not in env.read().split(b"\0"):
                    continue
            if not _is_zombie(int(entry.name)):
                found.add(int(entry.name))
        except OSError:
            continue
    return found


def _is_zombie(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(") ", 1)[1][0] in "ZX"
    except OSError:
        return True


def alive(pids: set[int]) -> set[int]:
    return {pid for pid in pids if not _is_zombie(pid)}


def poll(predicate, timeout: float, interval: float = 0.02) -> bool:
    """Like wait_for, but only says whether `predicate` came true in time."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval)
    return True


def wait_gone(pids: set[int], timeout: float = 10.0) -> None:
    wait_for(lambda: not alive(pids), timeout=timeout,
             message="processes from before the crash to be gone")
    assert not alive(pids)


# A CLI call costs ~0.3 s of CPU; where the CLI is not what a test is about, these helpers talk
# to the daemon's socket and database directly (the database is the source of truth).


def start(daemon: DaemonHarness) -> None:
    """Start the daemon and wait until it answers on its socket."""
    daemon.launch()
    daemon.wait_answering()


def db_rows(home: Path, sql: str, args: tuple = ()) -> list[sqlite3.Row]:
    conn = sqlite3.connect(home / "easyflow.db", timeout=30)
    try:
        conn.row_factory = sqlite3.Row
        return conn.execute(sql, args).fetchall()
    finally:
        conn.close()


def register(daemon: DaemonHarness, **steps: list[str]) -> None:
    """One-step workflows (name=argv), registered with one `workflow add`."""
    daemon.cli("workflow", "add", *(str(daemon.workflow_file(name, argv))
                                     for name, argv in steps.items()))


def run_row(daemon: DaemonHarness, run_id: int) -> dict:
    (row,) = db_rows(daemon.home, "SELECT * FROM runs WHERE id = ?", (run_id,))
    return dict(row)


def submit(daemon: DaemonHarness, name: str) -> dict:
    """Queue a run of `name` as `run --now` would, and wake the daemon; the new row."""
    with Store.open(daemon.home) as store:
        row = plan_run(store.get_workflow(name), trigger=Trigger.MANUAL, now=utcnow(),
                       policy=QueuePolicy())
        [run_id] = store.queue.enqueue([row])
    wake(daemon.home)
    return run_row(daemon, run_id)


def wait_state(daemon: DaemonHarness, run_id: int, *states: str, timeout: float = 30) -> dict:
    wait_for(lambda: run_row(daemon, run_id)["state"] in states, timeout=timeout,
             message=f"run {run_id} to be {' or '.join(states)}")
    return run_row(daemon, run_id)


def wait_started(daemon: DaemonHarness, run_id: int, timeout: float = 30) -> dict:
    wait_for(lambda: run_row(daemon, run_id)["started_at"], timeout=timeout,
             message=f"run {run_id} to start")
    return run_row(daemon, run_id)


# ---------------------------------------------------------------------- 1. kill -9


def marker_step(markers: Path, tag: str, spawn: bool = False, pause: str = "") -> list[str]:
    """Sleep 0-50 ms (by run id; or `pause` seconds), then leave markers/RUN_ID.PID: one file per
    execution that got to the end. With `spawn`, first start a grandchild that would sleep for 5
    minutes. All carry FAULT_TAG=tag in their environment, so a scan of /proc finds them."""
    delay = pause or "0.0$((EASYFLOW_RUN_ID % 6))"
    script = f'sleep "{delay}"; : > "$0/$EASYFLOW_RUN_ID.$$"'
    if spawn:
        script = "sleep 300 & " + script
    return ["env", f"FAULT_TAG={tag}", "sh", "-c", script, str(markers)]


def submit_directly(home: Path, specs: list, count: int, rng: random.Random) -> list[int]:
    """Queue `count` runs straight into the database (the CLI flood is another test)."""
    ids = []
    with Store.open(home) as store:
        for _ in range(count):
            spec = rng.choice(specs)
            row = plan_run(spec, trigger=Trigger.MANUAL, now=utcnow(), policy=QueuePolicy(),
                           override=rng.choice(list(Mode)))
            ids.extend(store.queue.enqueue([row]))
    wake(home)
    return ids


def test_kill_9_at_random_moments_loses_nothing(daemon: DaemonHarness, tmp_path):
    runs_wanted, kills_wanted = (2000, 100) if SOAK else (300, 20)
    rng = random.Random(20261126)
    tag = uuid.uuid4().hex
    markers = tmp_path / "markers"
    markers.mkdir()
    # Small pools: each restart boots every worker, and that is most of this test's CPU.
    daemon.write_config(config(realtime=2, balanced=1, eco=1))
    step, spawner = marker_step(markers, tag), marker_step(markers, tag, spawn=True)
    # A few runs of `lingerer` (0.5 s) give some kills a run that is certainly mid-step.
    lingerer = marker_step(markers, tag, spawn=True, pause="0.5")
    daemon.cli("workflow", "add", str(daemon.workflow_file("plain", step)),
               str(daemon.workflow_file("retried", step, retries=1)),
               str(daemon.workflow_file("spawner", spawner)),
               str(daemon.workflow_file("spawner-retried", spawner, retries=1)),
               str(daemon.workflow_file("lingerer", lingerer, retries=1)))
    with Store.open(daemon.home) as store:
        specs = [spec for spec in store.all_workflows() if spec.name != "lingerer"]
        lingerer_spec = store.get_workflow("lingerer")

    began = time.monotonic()
    submitted: list[int] = []
    from_before_crashes: set[int] = set()
    kills = caught_running = 0
    while kills < kills_wanted:
        daemon.launch()
        moment = rng.random()
        if moment < 0.2:
            # Sometimes while it starts up: in the middle of recovering from the last kill.
            time.sleep(rng.uniform(0.0, 0.4))
        else:
            daemon.wait_answering()
            # Its recovery pass has run: nothing from before any crash may still be alive.
            wait_gone(from_before_crashes)
            from_before_crashes.clear()
            share = max(0, runs_wanted - len(submitted)) // max(1, kills_wanted - kills)
            submitted += submit_directly(daemon.home, specs, share, rng)
            if moment < 0.45:
                # While a step certainly runs (its grandchild too).
                (slow,) = submit_directly(daemon.home, [lingerer_spec], 1, rng)
                submitted.append(slow)
                poll(lambda s=slow: run_row(daemon, s)["started_at"], timeout=15)
                time.sleep(rng.uniform(0.0, 0.05))
            else:
                time.sleep(rng.uniform(0.0, 0.8))
        from_before_crashes |= tagged_processes(tag)
        daemon.proc.send_signal(signal.SIGKILL)
        daemon.proc.wait(10)
        kills += 1
        caught_running += len(db_rows(daemon.home, "SELECT id FROM runs WHERE state = 'running'"))
    submitted += submit_directly(daemon.home, specs, max(0, runs_wanted - len(submitted)), rng)
    killing_took = time.monotonic() - began

    daemon.launch()
    daemon.wait_answering()
    wait_gone(from_before_crashes)
    wait_for(lambda: not db_rows(daemon.home, "SELECT id FROM runs WHERE state IN "
                                              "('queued', 'running')"),
             timeout=120, interval=0.2, message="every run to settle")
    daemon.stop(timeout=30)

    runs = {row["id"]: dict(row) for row in db_rows(daemon.home, "SELECT * FROM runs")}
    executions = Counter(int(name.split(".")[0]) for name in os.listdir(markers))
    lost = [i for i in submitted if i not in runs]
    stuck = [i for i, r in runs.items() if r["state"] not in FINISHED]
    duplicated = [i for i, n in executions.items() if n > 1]
    unrecorded = [i for i in executions if i not in runs]
    succeeded = [i for i, r in runs.items() if r["state"] == "succeeded"]
    succeeded_unseen = [i for i in succeeded if executions[i] != 1]
    orphans = tagged_processes(tag)
    interrupted = [r for r in runs.values()
                   if "daemon stopped while this run" in (r["error"] or "")]
    retries = [r for r in runs.values() if r["trigger"] == "retry"]
    states = Counter(r["state"] for r in runs.values())
    print(f"\nkill -9: {kills} kills in {killing_took:.1f}s, catching {caught_running} runs "
          f"claimed or running, {len(interrupted)} of them mid-step; {len(submitted)} runs "
          f"submitted, "
          f"{len(retries)} retries, {len(runs)} rows {dict(states)}; lost {len(lost)}, "
          f"stuck {len(stuck)}, duplicated {len(duplicated)}, orphans {len(orphans)}; "
          f"total {time.monotonic() - began:.1f}s")
    assert lost == [] and stuck == [] and unrecorded == []
    assert duplicated == [], {i: executions[i] for i in duplicated}
    assert succeeded_unseen == [], "runs recorded as succeeded must have executed exactly once"
    assert orphans == set()
    assert len(submitted) >= runs_wanted and kills >= 20
    assert interrupted, "no kill caught a run mid-step: the test did not test much"
    for run in runs.values():
        if run["state"] != "succeeded":
            assert run["error"], run
        if run["trigger"] == "retry":
            first = runs[run["retry_of"]]
            assert first["state"] in ("failed", "timed_out"), (first, run)
            assert first["workflow"] in ("retried", "spawner-retried", "lingerer"), (first, run)
    assert "Traceback" not in daemon.log_text()


# ---------------------------------------------------------------------- 4. concurrent writers


def submit_in_a_loop(daemon: DaemonHarness, name: str, count: int) -> list[tuple]:
    """One writer: `count` real `easyflow run NAME --now --no-wait`, one after another."""
    # Bytecode cached as an installed package has it (this sandbox sets DONTWRITEBYTECODE).
    env = daemon.env(PYTHONPYCACHEPREFIX=str(daemon.root / "pycache"))
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    results = []
    for _ in range(count):
        done = subprocess.run([*easyflow_command(), "run", name, "--now", "--no-wait"],
                              env=env, text=True, capture_output=True, timeout=120,
                              stdin=subprocess.DEVNULL)
        results.append((done.returncode, done.stdout, done.stderr))
    return results


def test_concurrent_cli_writers_are_all_recorded_once(daemon: DaemonHarness):
    writers, each = (8, 200) if SOAK else (8, 4)
    daemon.write_config(config())
    daemon.add_workflow("noop", ["true"])
    start(daemon)
    began = time.monotonic()
    with ThreadPoolExecutor(writers) as pool:
        batches = list(pool.map(lambda _: submit_in_a_loop(daemon, "noop", each),
                                range(writers)))
    took = time.monotonic() - began
    results = [result for batch in batches for result in batch]

    failures = [r for r in results if r[0] != 0]
    assert failures == [], failures[:5]
    noisy = [r[2] for r in results if not re.fullmatch(
        r"run (\d+): noop in real-time mode \(manual\)\n", r[2])]
    assert noisy == [], noisy[:5]  # no "database is locked", no traceback: one line each
    printed = [int(r[1]) for r in results]
    assert len(set(printed)) == len(printed) == writers * each
    wait_for(lambda: not db_rows(daemon.home, "SELECT id FROM runs WHERE state IN "
                                              "('queued', 'running')"),
             timeout=60, interval=0.2, message="every submitted run to finish")
    rows = db_rows(daemon.home, "SELECT id, state FROM runs WHERE workflow = 'noop'")
    assert sorted(r["id"] for r in rows) == sorted(printed)
    assert {r["state"] for r in rows} == {"succeeded"}
    print(f"\nconcurrent writers: {len(rows)} of {len(results)} submissions recorded once, "
          f"{writers}x{each} in {took:.1f}s ({len(results) / took:.1f}/s)")
    daemon.stop()
    assert "Traceback" not in daemon.log_text()


# ---------------------------------------------------------------------- 5. storage under the daemon


def submit_until(daemon: DaemonHarness, name: str, stop, limit: int) -> list[tuple]:
    """Like submit_in_a_loop, until `stop()` (or `limit` submissions)."""
    env = daemon.env(PYTHONPYCACHEPREFIX=str(daemon.root / "pycache"))
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    results = []
    while not stop() and len(results) < limit:
        done = subprocess.run([*easyflow_command(), "run", name, "--now", "--no-wait"],
                              env=env, text=True, capture_output=True, timeout=120,
                              stdin=subprocess.DEVNULL)
        results.append((done.returncode, done.stdout, done.stderr))
    return results


def test_deleting_the_wal_under_the_daemon_loses_no_run_and_reuses_no_id(daemon: DaemonHarness,
                                                                          tmp_path):
    """`rm easyflow.db-wal easyflow.db-shm` amid a stream of `run --now --no-wait`: the daemon
    notices, stops taking work, copies what it committed back into the database and exits 75;
    clients are refused meanwhile; after a restart every id handed out ran, once."""
    # Runs queued before the deletion; how long the stopping daemon keeps refusing after it.
    writers, each, before, refusing = (8, 100, 100, 10.0) if SOAK else (2, 6, 2, 0.0)
    gate = tmp_path / "gate"  # the slow run, which the stopping daemon waits for, ends then
    daemon.write_config(config(drain_grace="60s"))
    register(daemon, noop=["true"],
             slow=["sh", "-c", f"while [ ! -e {gate} ]; do sleep 0.05; done"])
    start(daemon)
    results: list[list[tuple]] = []
    exited = False
    with ThreadPoolExecutor(writers) as pool:
        futures = [pool.submit(submit_until, daemon, "noop", lambda: exited, each)
                   for _ in range(writers)]
        wait_for(lambda: len(db_rows(daemon.home, "SELECT id FROM runs")) >= before,
                 timeout=600, interval=0.2, message="runs to be queued")
        slow = wait_started(daemon, submit(daemon, "slow")["id"])  # the drain waits for it
        for suffix in ("-wal", "-shm"):
            os.unlink(daemon.home / f"easyflow.db{suffix}")
        status = wait_for(lambda: daemon_status(daemon.home)["fault"], timeout=10,
                          message="`status` to show the fault")
        assert status == "easyflow.db-wal was deleted; easyflow.db-shm was deleted"
        shown = daemon.cli("status", check=False)
        assert shown.returncode == 0 and "storage fault" in shown.stdout, shown
        late = daemon.cli("run", "noop", "--now", "--no-wait", check=False)
        time.sleep(refusing)  # the writers go on meanwhile (a longer stream in the soak)
        gate.touch()
        code = daemon.wait_exit(30)
        exited = True
        results = [future.result() for future in futures]
    assert code == 75, daemon.log_tail()
    log_text = daemon.log_text()
    assert "storage fault: easyflow.db-wal was deleted; easyflow.db-shm was deleted" in log_text
    assert "copied back into" in log_text and "Traceback" not in log_text

    flat = [result for batch in results for result in batch]
    # Every client that queued a run said its id on stderr, whatever became of it then (run by
    # the daemon, left queued by the stopping daemon, or run in the foreground once it was gone).
    handed_out = [int(m) for _, _, err in flat for m in re.findall(r"^run (\d+): noop in", err,
                                                                   re.MULTILINE)]
    assert len(set(handed_out)) == len(handed_out), Counter(handed_out).most_common(3)
    queued = [err for code, _, err in flat if code and "waits in the queue" in err]
    refused = [err for code, _, err in flat if code and "waits in the queue" not in err]
    assert all(err.startswith("error: ") and len(err.splitlines()) == 1
               and "Traceback" not in err for err in refused), refused[:3]
    assert all("easyflow.db-" in err for err in refused), refused[:3]
    assert late.returncode == 1 and late.stdout == "", late
    assert late.stderr == (f"error: {daemon.home}/easyflow.db-wal is missing while another "
                           "process has the database open; refusing to use it, nothing was "
                           "written (a daemon notices this, stops taking work and starts again "
                           "on its files: `easyflow status` shows it)\n")
    handed_out.append(slow["id"])

    start(daemon)
    wait_for(lambda: not db_rows(daemon.home, "SELECT id FROM runs WHERE state IN "
                                              "('queued', 'running')"),
             timeout=60, interval=0.2, message="every run to finish after the restart")
    rows = {r["id"]: r["state"] for r in db_rows(daemon.home, "SELECT id, state FROM runs")}
    assert sorted(rows) == sorted(handed_out)  # none lost, none the client was not told of
    assert set(rows.values()) == {"succeeded"}
    assert db_rows(daemon.home, "PRAGMA integrity_check")[0][0] == "ok"
    print(f"\nWAL deleted amid {len(flat)} submissions: {len(handed_out)} given an id, "
          f"{len(queued)} left queued by a stopping daemon, {len(refused)} refused; "
          f"{len(rows)} runs recorded, 0 lost, 0 ids handed out twice")
    daemon.stop()


# ---------------------------------------------------------------------- 6. broken environment


def cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(") ", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def set_immutable(paths: list[Path], on: bool) -> None:
    subprocess.run(["chattr", "+i" if on else "-i", *map(str, paths)], check=True,
                   capture_output=True)


@pytest.fixture
def immutable(daemon: DaemonHarness):
    """Make the state directory read-only even for root: `chattr +i` (chmod does not stop root).

    The -shm file and the socket stay as they are: SQLite maps the -shm file (a write to an
    immutable mapping is SIGBUS) and clients need the socket."""
    made: list[Path] = []

    def make(on: bool) -> None:
        home = daemon.home
        paths = [home, home / "logs", home / "easyflow.db", home / "easyflow.db-wal"]
        set_immutable(paths, on)
        made[:] = paths if on else []

    probe = daemon.root / "probe"
    probe.touch()
    try:
        set_immutable([probe], True)
        set_immutable([probe], False)
    except (OSError, subprocess.CalledProcessError):
        pytest.skip("chattr +i is not available here")
    yield make
    if made:
        set_immutable(made, False)


def assert_waits_quietly_for_the_database(daemon) -> None:
    """The daemon has said it cannot write, stays up, and does not spin while it waits."""
    wait_for(lambda: "cannot write the database" in daemon.log_text(), timeout=20,
             message="the daemon to report that it cannot write")
    cpu_before = cpu_seconds(daemon.pid)
    time.sleep(2)
    assert daemon.proc.poll() is None, daemon.log_tail()
    assert cpu_seconds(daemon.pid) - cpu_before < 0.5, "the daemon spins while it waits"


def test_read_only_state_directory_is_survived(daemon: DaemonHarness, immutable):
    daemon.write_config(config())
    register(daemon, quick=["true"], slow=["sleep", "2"])
    start(daemon)
    before = wait_state(daemon, submit(daemon, "quick")["id"], "succeeded")
    slow = submit(daemon, "slow")
    wait_started(daemon, slow["id"])

    immutable(True)
    refused = daemon.cli("run", "quick", "--now", "--no-wait", check=False)
    assert refused.returncode == 1, refused
    assert refused.stderr.startswith("error: database: ") and len(
        refused.stderr.splitlines()) == 1, refused.stderr
    assert "readonly" in refused.stderr and "Traceback" not in refused.stderr
    # The slow run ends meanwhile: its end cannot be written; the daemon says so and waits.
    assert_waits_quietly_for_the_database(daemon)
    assert daemon_status(daemon.home)["pid"] == daemon.pid  # still answering

    immutable(False)
    done = wait_state(daemon, slow["id"], "succeeded")
    assert done["exit_code"] == 0
    wait_state(daemon, submit(daemon, "quick")["id"], "succeeded")
    assert "can be written again" in daemon.log_text()
    assert db_rows(daemon.home, "PRAGMA integrity_check")[0][0] == "ok"
    assert run_row(daemon, before["id"]) == before
    daemon.stop()
    assert "Traceback" not in daemon.log_text()


@pytest.fixture
def small_disk(daemon: DaemonHarness):
    """The state directory on its own 24 MiB tmpfs, so the test can fill it up."""
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=24m,mode=0700", "tmpfs",
                              str(daemon.home)], capture_output=True, text=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.strip()}")
    yield daemon.home
    subprocess.run(["umount", "-l", str(daemon.home)], capture_output=True)


def fill_up(path: Path) -> None:
    """Write zeros to `path` until the file system is full."""
    chunk = b"\0" * (1 << 20)
    with open(path, "wb", buffering=0) as filler:
        try:
            while True:
                filler.write(chunk)
        except OSError as exc:
            assert exc.errno == errno.ENOSPC, exc
        with contextlib.suppress(OSError):
            while True:
                filler.write(chunk[:4096])


def test_full_disk_is_survived(daemon: DaemonHarness, small_disk: Path):
    daemon.write_config(config())
    register(daemon, quick=["true"], chatty=["sh", "-c", "sleep 1.5; seq 100000"])
    start(daemon)
    before = wait_state(daemon, submit(daemon, "quick")["id"], "succeeded")
    chatty = submit(daemon, "chatty")
    wait_started(daemon, chatty["id"])

    with sqlite3.connect(small_disk / "easyflow.db") as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")  # the next write must grow the WAL
    fill_up(small_disk / "filler")
    refused = daemon.cli("run", "quick", "--now", "--no-wait", check=False)
    assert refused.returncode == 1, refused
    assert refused.stderr == "error: database: database or disk is full\n", refused.stderr
    # The chatty run writes its output to a full disk and ends: neither kills the daemon.
    assert_waits_quietly_for_the_database(daemon)

    (small_disk / "filler").unlink()
    done = wait_state(daemon, chatty["id"], "succeeded")
    assert "run log incomplete: No space left on device" in done["error"], done
    wait_state(daemon, submit(daemon, "quick")["id"], "succeeded")
    assert db_rows(daemon.home, "PRAGMA integrity_check")[0][0] == "ok"
    assert run_row(daemon, before["id"]) == before
    daemon.stop()
    assert "Traceback" not in daemon.log_text()


# ---------------------------------------------------------------------- 5. big output


def memory_kb(pid: int) -> dict[str, int]:
    """VmRSS (now) and VmHWM (the peak so far) of a process."""
    with open(f"/proc/{pid}/status") as status:
        return {line.split(":")[0]: int(line.split()[1]) for line in status
                if line.startswith(("VmRSS:", "VmHWM:"))}


def test_gigantic_output_is_capped_and_memory_stays_flat(daemon: DaemonHarness):
    volume = (4 << 30) if SOAK else (1 << 30)
    daemon.write_config(config(realtime=1, log_max_bytes=1 << 20))
    register(daemon, warmup=["true"], flood=["sh", "-c", f"yes | head -c {volume}"])
    start(daemon)
    warm = wait_state(daemon, submit(daemon, "warmup")["id"], "succeeded")
    worker = warm["pid"]
    before = {"daemon": memory_kb(daemon.pid), "worker": memory_kb(worker)}

    began = time.monotonic()
    flood = wait_state(daemon, submit(daemon, "flood")["id"], "succeeded", timeout=120)
    took = time.monotonic() - began
    after = {"daemon": memory_kb(daemon.pid), "worker": memory_kb(flood["pid"])}

    assert flood["pid"] == worker  # the same warm worker: before and after compare
    print(f"\nbig output: {volume >> 20} MiB through the log in {took:.1f}s; "
          f"RSS before/after (peak) KiB: daemon {before['daemon']} -> {after['daemon']}, "
          f"worker {before['worker']} -> {after['worker']}")
    for who in ("daemon", "worker"):
        assert after[who]["VmHWM"] - before[who]["VmRSS"] < 8 * 1024, (who, before, after)
        assert after[who]["VmRSS"] - before[who]["VmRSS"] < 4 * 1024, (who, before, after)
    log = (daemon.home / "logs" / f"{flood['id']}.log").read_bytes()
    assert len(log) < (1 << 20) + 1024
    assert log.count(b"y\n") == (1 << 20) // 2
    dropped = volume - (1 << 20)
    assert f"[easyflow] [… {dropped:,} bytes dropped …]\n".encode() in log
    daemon.stop()


# ---------------------------------------------------------------------- 3. hard timeouts


def test_timeout_kills_a_term_ignoring_step_and_its_grandchildren(daemon: DaemonHarness,
                                                                  tmp_path):
    pids = tmp_path / "pids"
    ignorer = "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(300)"
    script = (f"trap '' TERM; (trap '' TERM; exec sleep 300) & echo $! >> {pids}; "
              f"python3 -c '{ignorer}' & echo $! >> {pids}; echo $$ >> {pids}; "
              "while :; do sleep 1; done")
    daemon.write_config(config(kill_grace="1s"))
    daemon.add_workflow("stubborn", ["sh", "-c", script], timeout="2s")
    start(daemon)
    run = submit(daemon, "stubborn")
    ended = wait_state(daemon, run["id"], "timed_out", "failed", "succeeded")

    assert ended["state"] == "timed_out", ended
    assert "timed out; its process group was killed" in ended["error"]
    # Killed at the timeout plus kill_grace, not later (and not before the timeout).
    assert 2.0 <= ended["duration_s"] < 2.0 + 1.0 + 1.5, ended
    started = [int(pid) for pid in pids.read_text().split()]
    assert len(started) == 3
    assert alive(set(started)) == set(), "a process of the timed-out step survived"
    daemon.stop()


def test_a_stopped_worker_does_not_let_its_run_outlive_its_timeout(daemon: DaemonHarness,
                                                                   tmp_path):
    """SIGSTOP a worker mid-run: it enforces nothing, so the daemon kills it past the run's
    timeout, kill grace and margin, replaces it, and the run is timed out."""
    pid_file = tmp_path / "step"
    daemon.write_config(config(realtime=1, kill_grace="1s"))
    daemon.add_workflow("sleepy", ["sh", "-c", f"echo $$ > {pid_file}; exec sleep 300"],
                        timeout="2s")
    start(daemon)
    run = submit(daemon, "sleepy")
    worker = wait_started(daemon, run["id"])["pid"]
    wait_for(pid_file.exists, timeout=10, message="the step to start")
    os.kill(worker, signal.SIGSTOP)
    try:
        ended = wait_state(daemon, run["id"], *FINISHED, timeout=20)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(worker, signal.SIGCONT)
    assert ended["state"] == "timed_out", ended
    assert "did not stop it and was killed" in ended["error"]
    assert ended["duration_s"] < 10, ended
    wait_gone({worker, int(pid_file.read_text())})
    again = submit(daemon, "sleepy")  # its pool has a worker again
    assert wait_started(daemon, again["id"])["pid"] != worker
    daemon.stop()


def test_a_killed_worker_s_steps_end_with_its_session_even_unmarked(daemon: DaemonHarness,
                                                                    tmp_path):
    """kill -9 of a worker: its step, and a process the step put in a group of its own with
    its mark cleared (`env -i`, setpgid: neither the step's group nor the mark finds it), end
    with the worker's session; the run, begun, is failed, never run again."""
    pids = tmp_path / "pids"
    hide = (f"env -i {sys.executable} -c 'import os; os.setpgid(0, 0);"
            " os.execv(\"/bin/sleep\", [\"sleep\", \"300\"])'")
    daemon.write_config(config(realtime=1, kill_grace="1s"))
    daemon.add_workflow("hider", ["sh", "-c", f"{hide} & echo $! $$ > {pids}; sleep 300"])
    start(daemon)
    run = submit(daemon, "hider")
    wait_for(pids.exists, timeout=20, message="the step to start")
    hidden, step = (int(pid) for pid in pids.read_text().split())
    wait_for(lambda: os.getpgid(hidden) != os.getpgid(step), timeout=20,
             message="the hidden process in a group of its own")
    worker = wait_started(daemon, run["id"])["pid"]
    os.kill(worker, signal.SIGKILL)
    ended = wait_state(daemon, run["id"], *FINISHED, timeout=20)
    assert ended["state"] == "failed" and "died" in ended["error"], ended
    wait_gone({worker, step, hidden})
    daemon.stop()


# ---------------------------------------------------------------------- clock jumps


LIBFAKETIME = next((path for path in Path("/usr/lib").glob("*/faketime/libfaketime.so.1")), None)


@pytest.mark.skipif(LIBFAKETIME is None, reason="libfaketime is not installed")
def test_a_run_across_a_two_day_clock_jump_lasts_what_it_lasted(daemon: DaemonHarness,
                                                                 tmp_path):
    """The wall clock jumps two days while a foreground run executes (libfaketime, its offset
    read from a file the step rewrites): the stamps show the jump, the duration does not."""
    offset = tmp_path / "offset"
    offset.write_text("+0\n")
    daemon.add_workflow("jump", ["sh", "-c", f"sleep 0.2; echo +2d > {offset}; sleep 0.3"])
    faked = {"LD_PRELOAD": str(LIBFAKETIME), "FAKETIME_TIMESTAMP_FILE": str(offset),
             "FAKETIME_NO_CACHE": "1", "FAKETIME_DONT_FAKE_MONOTONIC": "1"}
    result = subprocess.run([*easyflow_command(), "run", "jump", "--now", "--json"],
                            env=daemon.env(**faked), capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    run = json.loads(result.stdout)
    assert run["state"] == "succeeded"
    stamped = datetime.fromisoformat(run["finished_at"]) - datetime.fromisoformat(
        run["started_at"])
    assert stamped >= timedelta(days=2)  # the wall clock only stamps
    assert 0.5 <= run["duration_s"] < 5, run


def uptimes(path: Path) -> list[float]:
    return [float(line) for line in path.read_text().split()] if path.exists() else []


@pytest.mark.skipif(LIBFAKETIME is None, reason="libfaketime is not installed")
def test_every_schedules_keep_real_intervals_across_clock_steps(daemon: DaemonHarness, tmp_path):
    """Under libfaketime the daemon's wall clock steps back an hour, then forward two days,
    each right after a fire and followed by a wake-up: an `every 2s` schedule goes on firing
    every two seconds of real time (its steps write /proc/uptime, which no step moves). Without
    the fix the step back silences it for an hour, and the step forward fires it at once."""
    offset, fired = tmp_path / "offset", tmp_path / "fired"
    offset.write_text("+0\n")
    daemon.write_config(config())
    daemon.add_workflow("tick", ["sh", "-c", f"cut -d' ' -f1 /proc/uptime >> {fired}"],
                        schedules=[{"every": "2s", "mode": "real-time"}])
    daemon.launch(LD_PRELOAD=str(LIBFAKETIME), FAKETIME_TIMESTAMP_FILE=str(offset),
                  FAKETIME_NO_CACHE="1", FAKETIME_DONT_FAKE_MONOTONIC="1")
    daemon.wait_answering()

    def fires_beyond(count: int) -> bool:
        return len(uptimes(fired)) > count

    for step in ("-1h", "+2d"):
        seen = len(wait_for(lambda: uptimes(fired), timeout=20, message="a fire"))
        wait_for(partial(fires_beyond, seen), timeout=20, message="the next fire")
        offset.write_text(f"{step}\n")
        daemon_status(daemon.home)  # a wake-up right after the step
        wait_for(partial(fires_beyond, seen + 2), timeout=20, message=f"fires after {step}")
    daemon.stop()
    runs = db_rows(daemon.home, "SELECT trigger, duration_s, enqueued_at FROM runs ORDER BY id")
    assert len(runs) == len(uptimes(fired))
    # The first slot may have passed before the daemon was up: that one is a catch-up, and the
    # gap after it is shorter. From then on, one fire every two seconds, give or take how late
    # a step starts on a busy box.
    assert {r["trigger"] for r in runs[1:]} == {"schedule"}
    gaps = [later - earlier for earlier, later in itertools.pairwise(uptimes(fired)[1:])]
    assert all(1.0 < gap < 3.5 for gap in gaps), gaps  # a step back would make one of 3600 s
    assert all(r["duration_s"] < 2 for r in runs), [r["duration_s"] for r in runs]
    stamps = [datetime.fromisoformat(r["enqueued_at"]) for r in runs]
    assert stamps[-1] - stamps[0] > timedelta(days=1, hours=22)  # the stamps show the steps
    print(f"\nevery 2s across -1h and +2d steps: {len(runs)} fires, gaps {min(gaps):.2f}-"
          f"{max(gaps):.2f}s, longest run {max(r['duration_s'] for r in runs):.3f}s, stamps "
          f"span {stamps[-1] - stamps[0]}")
    assert "the wall clock was stepped by -3600s" in daemon.log_text()
    assert "the wall clock was stepped by +176400s" in daemon.log_text()  # from -1h to +2d


# ---------------------------------------------------------------------- 2. graceful stop


def test_sigterm_claims_nothing_new_and_kills_what_outlasts_the_grace(daemon: DaemonHarness,
                                                                       tmp_path):
    """Beyond tests/e2e/test_daemon_e2e.py: a worker freed during the drain claims nothing (not even
    a run submitted after SIGTERM), a TERM-ignoring run is killed once the grace is over, and
    the daemon exits 0 far inside systemd's TimeoutStopSec=90."""
    pids, go = tmp_path / "pids", tmp_path / "go"
    # The grace outlasts the two CLI calls made during it, however slow a loaded box makes them.
    daemon.write_config(config(realtime=2, drain_grace="8s", kill_grace="1s"))
    register(daemon, finisher=["sh", "-c", f"until [ -e {go} ]; do sleep 0.05; done"],
             waiter=["true"], outlaster=["sh", "-c", f"trap '' TERM; echo $$ >> {pids}; "
                                                     "sleep 60 & echo $! >> {pids}; wait"])
    start(daemon)
    finisher = submit(daemon, "finisher")
    outlaster = submit(daemon, "outlaster")
    wait_started(daemon, finisher["id"])
    wait_started(daemon, outlaster["id"])
    waiting = [submit(daemon, "waiter") for _ in range(2)]  # both workers busy: these wait

    began = time.monotonic()
    daemon.send(signal.SIGTERM)
    # Through the CLI: the daemon says it is stopping and the run stays queued for its next
    # start; waiting for the run (which used to wait for ever) ends at once too.
    late = told_the_daemon_is_stopping(daemon, "--no-wait")
    later = told_the_daemon_is_stopping(daemon)
    go.touch()  # the finisher ends within the grace; its free worker must not claim anything
    code = daemon.wait_exit(30)
    took = time.monotonic() - began

    assert code == 0, daemon.log_tail()
    assert took < 8 + 1 + 5, f"took {took:.1f}s to stop (grace 8s, kill_grace 1s)"
    runs = {r["id"]: dict(r) for r in db_rows(daemon.home, "SELECT * FROM runs")}
    assert runs[finisher["id"]]["state"] == "succeeded"
    stopped = runs[outlaster["id"]]
    assert stopped["state"] == "failed" and "shutdown" in stopped["error"], stopped
    assert alive({int(pid) for pid in pids.read_text().split()}) == set()
    for record in [*waiting, late, later]:
        left = runs[record["id"]]
        assert (left["state"], left["claimed_at"]) == ("queued", None), left
    print(f"\ngraceful stop: exit 0 in {took:.1f}s with a run outlasting an 8s grace")

    start(daemon)  # the queue was kept: the next daemon runs it
    for record in [*waiting, late, later]:
        wait_state(daemon, record["id"], "succeeded")
    daemon.stop()
    assert "Traceback" not in daemon.log_text()


def told_the_daemon_is_stopping(daemon: DaemonHarness, *args: str) -> dict:
    """`run waiter --now` while the daemon drains: exit 1, the id, and what became of the run."""
    result = daemon.cli("run", "waiter", "--now", "--json", *args, check=False, timeout=30)
    record = json.loads(result.stdout)
    assert result.returncode == 1, result.stderr
    said = " ".join(result.stderr.split())
    assert f"the daemon is stopping: run {record['id']} waits" in said, said
    assert "until it starts again" in said
    return record


def idle_connections(path: Path, count: int) -> list[socket.socket]:
    """`count` connections that never say a word (each waits its turn in the backlog)."""
    connections = []
    for _ in range(count):
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        connections.append(sock)
        while True:
            try:
                sock.connect(str(path))
                break
            except BlockingIOError:  # the backlog is full: the daemon takes them in turn
                time.sleep(0.001)
    return connections


def malformed_request(home: Path, data: bytes) -> bytes:
    sock = connect(home, timeout=30)
    assert sock is not None
    with sock:
        reply = b""
        with contextlib.suppress(ConnectionResetError, BrokenPipeError):
            sock.sendall(data)
            while chunk := sock.recv(65536):
                reply += chunk
        return reply


@pytest.fixture
def many_files():
    """This process may hold thousands of sockets (the daemon under test may not)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(hard, 8192)), hard))
    yield
    resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def test_idle_connections_and_malformed_requests_do_not_exhaust_the_daemon(
        daemon: DaemonHarness, many_files):
    daemon.max_files = 256  # so that 2,000 idle connections run it out of descriptors
    start(daemon)
    path = daemon.home / "easyflow.sock"
    idle = idle_connections(path, 2000)
    try:
        for n in range(1000):
            reply = malformed_request(daemon.home, b'{"op": "cancel", "id": %d.5}\n' % n)
            assert not reply or json.loads(reply)["ok"] is False, reply
        began = time.monotonic()
        status = daemon_status(daemon.home, timeout=30)
        answered_in = time.monotonic() - began
    finally:
        for sock in idle:
            sock.close()
    assert status is not None and status["pid"] == daemon.pid, daemon.log_tail()
    print(f"status answered in {answered_in * 1000:.1f} ms")
    assert daemon.proc.poll() is None
    assert "out of file descriptors" in daemon.log_text()  # EMFILE did happen, and passed
    assert daemon_status(daemon.home) is not None


def open_files(pid: int) -> list[str]:
    """What a process's descriptors point to ("socket:[…]", paths, …)."""
    fd_dir = Path(f"/proc/{pid}/fd")
    targets = []
    with contextlib.suppress(FileNotFoundError):
        for fd in fd_dir.iterdir():
            with contextlib.suppress(FileNotFoundError):
                targets.append(os.readlink(fd))
    return targets


@pytest.mark.parametrize("args", [["--no-wait"], ["--count", "3", "--no-wait"]],
                         ids=["one", "bulk"])
def test_clients_connect_only_after_committing_their_runs(daemon: DaemonHarness, args):
    register(daemon, noop=["true"])
    start(daemon)
    database = daemon.home / "easyflow.db"
    lock = sqlite3.connect(database, isolation_level=None)
    lock.execute("BEGIN IMMEDIATE")  # every writer now waits for us
    client = subprocess.Popen([*easyflow_command(), "run", "noop", "--now", *args],
                              env=daemon.env(), text=True, stdin=subprocess.DEVNULL,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        wait_for(lambda: str(database) in open_files(client.pid), timeout=30,
                 message="the client to open the database")
        time.sleep(1.0)  # it plans, then waits for the lock
        for _ in range(5):
            held = [f for f in open_files(client.pid) if f.startswith("socket:")]
            assert not held, "the client holds a connection while waiting for the database"
            time.sleep(0.1)
    finally:
        lock.execute("COMMIT")
        lock.close()
    out, err = client.communicate(timeout=CLI_TIMEOUT)
    assert client.returncode == 0, err
    ids = [int(line) for line in out.split()]
    assert len(ids) == (3 if "--count" in args else 1)
    daemon.wait_for_runs(lambda runs: [r["state"] for r in runs] == ["succeeded"] * len(ids),
                         timeout=30, message="the runs to succeed")


def test_a_daemon_that_does_not_answer_is_not_taken_for_one_that_is_not_running(
        daemon: DaemonHarness, tmp_path):
    ran = tmp_path / "ran"
    register(daemon, touch=["touch", str(ran)])
    start(daemon)
    daemon.send(signal.SIGSTOP)
    try:
        status = daemon.cli("status", check=False)
        assert status.returncode == 3 and "not answering" in status.stdout, status
        assert daemon.cli("status", "--json", check=False).returncode == 3
        result = daemon.cli("run", "touch", "--now", "--no-wait", check=False)
        assert result.returncode == 1 and result.stdout.split() == [result.stdout.strip()]
        run_id = int(result.stdout)
        assert "the daemon is not answering" in result.stderr
        assert not ran.exists(), "the CLI ran the workflow itself"
        assert run_row(daemon, run_id)["state"] == "queued"
    finally:
        daemon.send(signal.SIGCONT)
    wait_state(daemon, run_id, "succeeded")  # the daemon takes it once it answers again
    assert ran.exists()
    daemon.stop()
