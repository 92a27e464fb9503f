"""Retries you can see, re-runs and live logs, through the real CLI and (mostly) a real daemon:
`run --now` follows a run through its retries and exits with the last attempt's outcome,
`runs retry` runs a run again, `logs -f` follows a run another process started, and a capped
log keeps its head and its tail."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import easyflow_command

pytest_plugins = ["tests.daemon_harness"]
pytest.register_assert_rewrite("tests.daemon_harness")
from tests.daemon_harness import CLI_TIMEOUT, DaemonHarness, wait_for  # noqa: E402

pytestmark = pytest.mark.e2e


def flaky_step(counter: Path, succeeds_at: int) -> list[str]:
    """Exits 3 until its attempt number `succeeds_at` (counted in `counter`)."""
    return ["sh", "-c", f'n=$(($(cat {counter} 2>/dev/null || echo 0) + 1)); echo $n > {counter}; '
            f'echo "attempt $n"; [ $n -ge {succeeds_at} ] || exit 3']


def add_flaky(daemon: DaemonHarness, name: str, succeeds_at: int) -> None:
    daemon.add_workflow(name, flaky_step(daemon.root / f"{name}.count", succeeds_at),
                        retries=2, retry_backoff="200ms")


def lines_of(text: str, prefix: str) -> list[str]:
    return [line for line in text.splitlines() if line.startswith(prefix)]


def test_run_now_follows_the_retries_the_daemon_queues(daemon: DaemonHarness):
    add_flaky(daemon, "flaky", succeeds_at=3)
    add_flaky(daemon, "broken", succeeds_at=99)
    add_flaky(daemon, "second", succeeds_at=2)
    daemon.start()

    result = daemon.cli("run", "flaky", "--now")
    assert lines_of(result.stdout, "attempt") == ["attempt 1", "attempt 2", "attempt 3"]
    assert lines_of(result.stderr, "attempt") == [
        "attempt 1 failed (exit 3); retrying in 200ms as run 2 (attempt 2 of 3)",
        "attempt 2 failed (exit 3); retrying in 200ms as run 3 (attempt 3 of 3)"]
    assert result.stderr.splitlines()[-1].startswith("run 3 (attempt 3) succeeded in ")
    shown = daemon.run(1)
    assert [(a["id"], a["state"]) for a in shown["attempts"]] == [
        (1, "failed"), (2, "failed"), (3, "succeeded")]

    failing = daemon.cli("run", "broken", "--now", "--json", check=False)
    assert failing.returncode == 1
    record = json.loads(failing.stdout)
    assert (record["attempt"], record["state"], record["exit_code"]) == (3, "failed", 3)

    queued = daemon.submit("broken")
    assert (queued["max_attempts"], queued["retry_backoff_s"]) == (3, 0.2)
    daemon.wait_for_runs(lambda runs: len(runs) == 9 and all(r["finished_at"] for r in runs))

    again = daemon.cli("runs", "retry", "3", "--json")
    rerun = json.loads(again.stdout)
    assert (rerun["id"], rerun["rerun_of"], rerun["trigger"], rerun["state"]) == (
        10, 3, "manual", "succeeded")
    assert "re-running run 3" in again.stderr
    unfinished = daemon.cli("runs", "retry", "999", check=False)
    assert (unfinished.returncode, unfinished.stderr) == (
        2, "error: unknown run 999 (see `easyflow runs list`)\n")

    # Several at once wait for each run's last attempt too.
    both = json.loads(daemon.cli("run", "second", "flaky", "--now", "--json").stdout)
    assert [(r["workflow"], r["attempt"], r["state"]) for r in both] == [
        ("second", 2, "succeeded"), ("flaky", 1, "succeeded")]


# Prints its first line, waits until the file named by its argument exists (the follower has
# seen that line: the run is still running when it does, however slow the box), then prints a
# line every 0.25 s and fails.
TICKER = """\
import os, sys, time
print('tick 0', flush=True)
deadline = time.monotonic() + 60
while not os.path.exists(sys.argv[1]) and time.monotonic() < deadline:
    time.sleep(0.02)
for i in range(1, 8):
    print(f'tick {i}', flush=True); time.sleep(0.25)
raise SystemExit(4)
"""
# Says it started, then runs until the file named by its argument exists: still running when
# its follower is stopped.
SLEEPER = 'echo started; while [ ! -e "$1" ]; do sleep 0.05; done'


def interrupt(follower: subprocess.Popen) -> str:
    """Ctrl-C, as a user presses it again when nothing happens: in two CI runs on a loaded box
    one SIGINT was not acted on (never reproduced by hand); its stderr once it exits."""
    for _ in range(3):
        follower.send_signal(signal.SIGINT)
        try:
            return follower.communicate(timeout=10)[1]
        except subprocess.TimeoutExpired:
            continue
    return follower.communicate(timeout=CLI_TIMEOUT)[1]


def test_logs_follow_a_run_another_process_started_until_it_ends(daemon: DaemonHarness):
    script = daemon.root / "ticker.py"
    script.write_text(TICKER)
    seen_first, sleeper_may_end = daemon.root / "seen-first", daemon.root / "sleeper-may-end"
    daemon.add_workflow("ticker", [sys.executable, str(script), str(seen_first)])
    daemon.add_workflow("sleeper", ["sh", "-c", SLEEPER, "sleeper", str(sleeper_may_end)])
    daemon.start()
    run_id = daemon.submit("ticker")["id"]

    follower = subprocess.Popen([*easyflow_command(), "logs", "-f", str(run_id)],
                                env=daemon.env(), stdin=subprocess.DEVNULL, text=True,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert follower.stdout is not None
    seen: list[tuple[str, str]] = []  # each line, and the run's state when it arrived
    for line in follower.stdout:
        state = [r["state"] for r in daemon.peek_runs() if r["id"] == run_id][0]
        seen.append((line.rstrip("\n"), state))
        seen_first.touch()
    stderr = follower.stderr.read() if follower.stderr else ""
    assert follower.wait(timeout=CLI_TIMEOUT) == 1, stderr  # the run's outcome: it failed

    assert [line for line, _ in seen if line.startswith("tick")] == [f"tick {i}"
                                                                    for i in range(8)]
    assert seen[-1][0] == "[easyflow] step 'step1' exited with code 4"
    assert ("tick 0", "running") in seen  # followed live, not read once at the end
    assert stderr.startswith(f"run {run_id} failed in ")
    assert daemon.cli("logs", str(run_id), "--tail", "1").stdout == seen[-1][0] + "\n"

    # Ctrl-C stops the following, not the run.
    # Started with Ctrl-C's default action, as a terminal's shell starts a command: a process
    # of the test run may have inherited SIGINT ignored, and an ignored SIGINT stays ignored.
    follower = subprocess.Popen([*easyflow_command(), "run", "sleeper", "--now"],
                                env=daemon.env(), stdin=subprocess.DEVNULL, text=True,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    assert follower.stdout is not None
    lines = iter(follower.stdout.readline, "")
    assert "started\n" in lines  # followed: the step's output came through
    sleeper = daemon.peek_runs("sleeper")[0]
    stderr = interrupt(follower)
    assert follower.returncode == 130, stderr
    assert f"stopped following run {sleeper['id']}; it goes on" in stderr
    assert daemon.peek_runs("sleeper")[0]["state"] == "running"
    sleeper_may_end.touch()
    assert daemon.wait_for_state(sleeper["id"], "succeeded")["state"] == "succeeded"


def test_a_capped_log_keeps_its_head_and_its_tail(daemon: DaemonHarness):
    daemon.write_config("""
        [logs]
        max_bytes = 4096
        """)
    daemon.add_workflow("chatty", ["sh", "-c", "seq 1 100000; echo 'the error at the end'; "
                                               "exit 5"])
    daemon.start()
    result = daemon.cli("run", "chatty", "--now", check=False)
    assert result.returncode == 1
    run = daemon.run(1)
    log = Path(run["log_path"]).read_text()
    head, rest = log.split("[easyflow] log limit of 4,096 bytes reached", 1)
    assert head.splitlines()[1:4] == ["1", "2", "3"]
    written = sum(len(f"{n}\n") for n in range(1, 100001)) + len("the error at the end\n")
    marker = rest.splitlines()[1]
    dropped = int(marker.removeprefix("[easyflow] [… ").removesuffix(" bytes dropped …]")
                  .replace(",", ""))
    tail = rest.split(marker + "\n", 1)[1]
    assert tail.endswith("99999\n100000\nthe error at the end\n"
                         "[easyflow] step 'step1' exited with code 5\n")
    assert len(head) - len(head.splitlines()[0]) - 1 + dropped + len(tail) == (
        written + len("[easyflow] step 'step1' exited with code 5\n"))
    assert len(log) < 4096 + 300  # the cap, and our four notes (step, limit, marker, exit)
    assert daemon.cli("logs", "1", "--tail", "2").stdout == (
        "the error at the end\n[easyflow] step 'step1' exited with code 5\n")


def test_foreground_retries_without_a_daemon(daemon: DaemonHarness):
    add_flaky(daemon, "flaky", succeeds_at=2)
    began = time.monotonic()
    result = daemon.cli("run", "flaky", "--now")
    assert time.monotonic() - began >= 0.2  # the backoff, slept here
    assert lines_of(result.stderr, "attempt") == [
        "attempt 1 failed (exit 3); retrying in 200ms as run 2 (attempt 2 of 3)"]
    assert [(r["pool"], r["state"]) for r in daemon.runs()] == [("foreground", "failed"),
                                                                ("foreground", "succeeded")]

    daemon.add_workflow("sleeper", ["sleep", "30"], retries=2)
    runner = subprocess.Popen([*easyflow_command(), "run", "sleeper", "--now"],
                              env=daemon.env(), stdin=subprocess.DEVNULL, text=True,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    wait_for(lambda: any(r["workflow"] == "sleeper" and r["pgid"] for r in daemon.peek_runs()),
             message="the sleeper's step to start")
    runner.send_signal(signal.SIGINT)  # stops the run here: cancelled, and not retried
    _, stderr = runner.communicate(timeout=CLI_TIMEOUT)
    assert runner.returncode == 1, stderr
    assert [r["state"] for r in daemon.runs("sleeper")] == ["cancelled"]
