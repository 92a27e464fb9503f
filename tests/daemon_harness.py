"""A real `easyflow daemon` in a subprocess, driven by the real `easyflow` CLI.

Used by the end-to-end daemon tests. It is also a small pytest plugin (a test module loads it
with `pytest_plugins = ["tests.daemon_harness"]`): the `daemon` fixture gives a harness that is
always killed in teardown, and a failing test's report gets the daemon's log appended.

Everything here waits by polling with a generous timeout; nothing relies on a fixed sleep.
"""

from __future__ import annotations

import contextlib
import json
import os
import resource
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

import pytest
import tomli_w

from tests.conftest import easyflow_command, subprocess_env

T = TypeVar("T")

READY_TIMEOUT = 60.0
# One command takes a second or two; a box loaded with other test processes can take minutes.
CLI_TIMEOUT = 180.0
# Inherited variables that would change how the daemon under test behaves.
SCRUBBED_ENV = ("REALTIME_MAX_WORKERS", "BALANCED_MAX_WORKERS", "ECO_MAX_WORKERS",
                "STATE_DIRECTORY", "NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID",
                "JOURNAL_STREAM", "INVOCATION_ID")

_HARNESSES = pytest.StashKey[list]()

# A step that records when it ran: `python record.py OUT SECONDS` appends "START END\n" to OUT.
RECORD_SCRIPT = """\
import sys, time
start = time.time()
time.sleep(float(sys.argv[2]))
end = time.time()
with open(sys.argv[1], "a") as out:
    out.write(f"{start!r} {end!r}\\n")
"""


def wait_for(predicate: Callable[[], T], timeout: float = 60.0, interval: float = 0.05,
             message: str = "the condition") -> T:
    """Call `predicate` until it returns something truthy and return that; fail after `timeout`."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {message} "
                                 f"(last value: {value!r})")
        time.sleep(interval)


def parse_time(text: str | None) -> datetime | None:
    """A run record's ISO-8601 UTC time as an aware datetime."""
    if text is None:
        return None
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def max_overlap(intervals: list[tuple[float, float]]) -> int:
    """The largest number of [start, end) intervals that cover one instant."""
    events = sorted([(start, 1) for start, _ in intervals] + [(end, -1) for _, end in intervals])
    level = peak = 0
    for _, delta in events:  # at equal times an end (-1) sorts before a start (+1)
        level += delta
        peak = max(peak, level)
    return peak


class DaemonHarness:
    """One EASYFLOW_HOME under `root`, its config, its workflows and (maybe) a running daemon."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.home = root / "home"
        self.home.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.config_path = self.home / "easyflow.toml"
        self.workflow_dir = root / "wf"
        self.workflow_dir.mkdir(exist_ok=True)
        self.log_path = root / "daemon.log"
        self.record_script = root / "record.py"
        self.record_script.write_text(RECORD_SCRIPT)
        self.proc: subprocess.Popen | None = None
        self.daemon_env: dict[str, str] = {}
        self.max_files: int | None = None  # the daemon's RLIMIT_NOFILE, if lowered

    # ------------------------------------------------------------------ environment, CLI

    def env(self, **extra: str) -> dict[str, str]:
        env = subprocess_env(self.home)
        for name in SCRUBBED_ENV:
            env.pop(name, None)
        env.update(extra)
        return env

    def cli(self, *args: str, check: bool = True,
            timeout: float = CLI_TIMEOUT) -> subprocess.CompletedProcess:
        result = subprocess.run([*easyflow_command(), *args], env=self.env(), text=True,
                                capture_output=True, timeout=timeout, stdin=subprocess.DEVNULL)
        if check:
            assert result.returncode == 0, (
                f"`easyflow {' '.join(args)}` exited {result.returncode}\n"
                f"stdout: {result.stdout}\nstderr: {result.stderr}\n{self.log_tail()}")
        return result

    def cli_json(self, *args: str) -> Any:
        return json.loads(self.cli(*args).stdout)

    # ------------------------------------------------------------------ config and workflows

    def write_config(self, text: str) -> Path:
        self.config_path.write_text(textwrap.dedent(text).lstrip())
        return self.config_path

    def workflow_file(self, name: str, *steps: list[str], **fields: Any) -> Path:
        """Write a workflow TOML file (one step per argv list) under root/wf; return its path."""
        doc = {"name": name, **fields,
               "steps": [{"name": f"step{i}", "run": [str(a) for a in argv]}
                         for i, argv in enumerate(steps, 1)]}
        path = self.workflow_dir / f"{name}.toml"
        path.write_text(tomli_w.dumps(doc))
        return path

    def add_workflow(self, name: str, *steps: list[str], **fields: Any) -> Path:
        path = self.workflow_file(name, *steps, **fields)
        self.cli("workflow", "add", str(path))
        return path

    def add_workflows(self, **steps: list[str]) -> None:
        """Several one-step workflows (name=argv) registered with one `workflow add`."""
        paths = [self.workflow_file(name, argv) for name, argv in steps.items()]
        self.cli("workflow", "add", *map(str, paths))

    def record_step(self, out: Path, seconds: float) -> list[str]:
        """A step that sleeps `seconds` and appends its start and end times to `out`."""
        return [sys.executable, str(self.record_script), str(out), str(seconds)]

    # ------------------------------------------------------------------ runs

    def submit(self, name: str, *args: str) -> dict[str, Any]:
        """`run NAME --now --no-wait --json`: the queued record (the daemon must be up)."""
        return self.cli_json("run", name, "--now", "--no-wait", "--json", *args)

    def submit_many(self, name: str, count: int, *args: str) -> list[dict[str, Any]]:
        """`count` submissions at once, each its own `easyflow run` process."""
        command = [*easyflow_command(), "run", name, "--now", "--no-wait", "--json", *args]
        procs = [subprocess.Popen(command, env=self.env(), text=True, stdin=subprocess.DEVNULL,
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE)
                 for _ in range(count)]
        # They share the box's cores: a second more for each on top of one command's timeout.
        deadline = time.monotonic() + CLI_TIMEOUT + count
        records = []
        try:
            for proc in procs:
                out, err = proc.communicate(timeout=max(1.0, deadline - time.monotonic()))
                assert proc.returncode == 0, f"submit {name} exited {proc.returncode}: {err}"
                records.append(json.loads(out))
        finally:
            # On a failure, none outlives the test (with the daemon gone, one would go on to
            # run its workflow in the foreground).
            for proc in procs:
                if proc.poll() is None:
                    proc.kill()
                    proc.wait()
        return sorted(records, key=lambda r: r["id"])

    def runs(self, workflow: str | None = None) -> list[dict[str, Any]]:
        """Every run (oldest first), from `runs list --json --limit 1000`."""
        args = ["runs", "list", "--json", "--limit", "1000"]
        if workflow:
            args += ["--workflow", workflow]
        return sorted(self.cli_json(*args), key=lambda r: r["id"])

    def run(self, run_id: int) -> dict[str, Any]:
        """One run, from `runs show ID --json`."""
        return self.cli_json("runs", "show", str(run_id), "--json")

    def peek_runs(self, workflow: str | None = None) -> list[dict[str, Any]]:
        """The runs table read straight from the database: a cheap poll while waiting.

        A CLI call costs ~0.5 s of CPU on a small box, so waits poll this and then confirm
        through the CLI; what tests assert always comes from `runs()` / `run()`.
        """
        path = self.home / "easyflow.db"
        if not path.exists():
            return []
        conn = sqlite3.connect(path, timeout=10)
        try:
            conn.row_factory = sqlite3.Row
            sql, args = "SELECT * FROM runs", ()
            if workflow:
                sql, args = sql + " WHERE workflow = ?", (workflow,)
            return [dict(row) for row in conn.execute(sql + " ORDER BY id", args)]
        finally:
            conn.close()

    def wait_for_runs(self, predicate: Callable[[list[dict[str, Any]]], Any], *,
                      workflow: str | None = None, timeout: float = 60.0,
                      message: str = "runs") -> list[dict[str, Any]]:
        """Wait until `predicate(runs)` holds, as `runs()` shows them; return those runs."""
        seen: list[list[dict[str, Any]]] = [[]]

        def check():
            if not predicate(self.peek_runs(workflow)):
                return False
            seen[0] = self.runs(workflow)
            return predicate(seen[0])

        try:
            wait_for(check, timeout, message=message)
        except AssertionError as exc:
            summary = [(r["id"], r["workflow"], r["trigger"], r["mode"], r["state"])
                       for r in self.peek_runs(workflow)]
            raise AssertionError(f"{exc}\nruns: {summary}\n{self.log_tail()}") from None
        return seen[0]

    def wait_for_run(self, run_id: int, predicate: Callable[[dict[str, Any]], Any], *,
                     timeout: float = 60.0, message: str = "") -> dict[str, Any]:
        """Wait until `predicate(run)` holds for one run, as `runs show` shows it; return it."""
        found: list[dict[str, Any]] = []

        def check():
            peeked = [r for r in self.peek_runs() if r["id"] == run_id]
            if not (peeked and predicate(peeked[0])):
                return False
            found[:] = [self.run(run_id)]
            return predicate(found[0])

        try:
            wait_for(check, timeout, message=message or f"run {run_id}")
        except AssertionError as exc:
            peeked = [r for r in self.peek_runs() if r["id"] == run_id]
            raise AssertionError(f"{exc}\nrun: {peeked}\n{self.log_tail()}") from None
        return found[0]

    def wait_for_state(self, run_id: int, *states: str, timeout: float = 60.0) -> dict[str, Any]:
        return self.wait_for_run(run_id, lambda r: r["state"] in states, timeout=timeout,
                                 message=f"run {run_id} to be {' or '.join(states)}")

    def wait_until_started(self, run_id: int, timeout: float = 60.0) -> dict[str, Any]:
        return self.wait_for_run(run_id, lambda r: r["started_at"], timeout=timeout,
                                 message=f"run {run_id} to start")

    # ------------------------------------------------------------------ the daemon process

    def start(self, ready_timeout: float = READY_TIMEOUT, **env: str) -> int:
        """Start `easyflow daemon` and wait until `status --json` answers for it; its pid."""
        self.launch(**env)
        self.wait_ready(ready_timeout)
        return self.proc.pid

    def launch(self, **env: str) -> int:
        """Start `easyflow daemon` without waiting for it; its pid."""
        assert self.proc is None or self.proc.poll() is not None, "daemon already running"
        self.daemon_env = env
        with open(self.log_path, "ab") as log:
            log.write(f"----- starting daemon at {time.time():.3f}\n".encode())
            log.flush()
            self.proc = subprocess.Popen([*easyflow_command(), "daemon"], env=self.env(**env),
                                         stdin=subprocess.DEVNULL, stdout=log,
                                         stderr=subprocess.STDOUT, start_new_session=True,
                                         preexec_fn=self._limit_files)
        return self.proc.pid

    def _limit_files(self) -> None:
        if self.max_files is not None:
            resource.setrlimit(resource.RLIMIT_NOFILE, (self.max_files, self.max_files))

    def wait_answering(self, timeout: float = READY_TIMEOUT) -> dict[str, Any]:
        """Like `wait_ready`, but asks over the socket from this process: no CLI to pay for."""
        from easyflow_cli.runtime.client import daemon_status

        def ready():
            if self.proc.poll() is not None:
                raise AssertionError(f"the daemon exited with {self.proc.returncode} before it "
                                     f"was ready\n{self.log_tail()}")
            status = daemon_status(self.home, timeout=2.0)
            return status if status and status["pid"] == self.proc.pid else None

        return wait_for(ready, timeout, interval=0.02, message="the daemon to answer")

    def wait_ready(self, timeout: float = READY_TIMEOUT) -> dict[str, Any]:
        def ready():
            if self.proc.poll() is not None:
                raise AssertionError(f"the daemon exited with {self.proc.returncode} before it "
                                     f"was ready\n{self.log_tail()}")
            result = self.cli("status", "--json", check=False)
            if result.returncode != 0:
                return None
            status = json.loads(result.stdout)
            return status if status["pid"] == self.proc.pid else None

        return wait_for(ready, timeout, interval=0.1, message="the daemon to answer `status`")

    def status(self) -> dict[str, Any]:
        return json.loads(self.cli("status", "--json", check=False).stdout)

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def send(self, sig: int) -> None:
        assert self.proc is not None and self.proc.poll() is None, "the daemon is not running"
        os.kill(self.proc.pid, sig)

    def wait_exit(self, timeout: float) -> int:
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"the daemon did not exit within {timeout:.0f}s\n"
                                 f"{self.log_tail()}") from None

    def stop(self, timeout: float = 15.0) -> float:
        """SIGTERM; assert it exits 0 within `timeout`. Returns how long it took."""
        began = time.monotonic()
        self.send(signal.SIGTERM)
        code = self.wait_exit(timeout)
        assert code == 0, f"the daemon exited {code} after SIGTERM\n{self.log_tail()}"
        return time.monotonic() - began

    def kill(self) -> None:
        """Teardown: kill the daemon's process group (daemon and workers) and left-over steps."""
        if self.proc is not None and self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(10)
        # Steps run in their own process groups; ones still running are recorded in the runs.
        with contextlib.suppress(sqlite3.Error):
            for run in self.peek_runs():
                if run["state"] == "running" and run.get("pgid"):
                    with contextlib.suppress(OSError):
                        os.killpg(run["pgid"], signal.SIGKILL)

    # ------------------------------------------------------------------ its log

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def log_tail(self, lines: int = 60) -> str:
        tail = self.log_text().splitlines()[-lines:]
        return "daemon log (tail):\n" + "\n".join(tail)


# ---------------------------------------------------------------------- pytest plugin


@pytest.fixture
def daemon(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[DaemonHarness]:
    """A harness in tmp_path (the daemon is not started yet); always killed at teardown."""
    harness = DaemonHarness(tmp_path)
    request.node.stash.setdefault(_HARNESSES, []).append(harness)
    try:
        yield harness
    finally:
        harness.kill()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    report = yield
    if report.when == "call" and (report.failed or hasattr(report, "wasxfail")):
        for harness in item.stash.get(_HARNESSES, []):
            report.sections.append((f"daemon log {harness.log_path}", harness.log_text()))
    return report
