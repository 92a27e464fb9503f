"""Execute one run's steps as child processes, and measure them.

Each step runs in its own process group with stdin closed and stdout+stderr piped to the run's
log file (capped, with a marker), optionally echoed live. A step past its time limit gets SIGTERM
to its whole group, then SIGKILL after `kill_grace`. Whatever a step leaves behind in its group is
killed when it exits. CPU and peak RSS come from wait4() of the step and of every descendant we
reap: the executing process is a child subreaper, so orphaned grandchildren are reaped (and
counted) here too.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import os
import selectors
import signal
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import BinaryIO

from easyflow_cli.model import RunState
from easyflow_cli.queue import Outcome
from easyflow_cli.rapl import EnergyMeter
from easyflow_cli.spec import StepSpec, WorkflowSpec

PR_SET_PDEATHSIG = 1
PR_SET_CHILD_SUBREAPER = 36
IOPRIO_WHO_PROCESS = 1
IOPRIO_CLASS_IDLE = 3
SYS_IOPRIO_SET = {"x86_64": 251, "aarch64": 30}
READ_CHUNK = 65536
MINIMAL_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
INHERITED_ENV = ("PATH", "HOME", "LANG", "LC_ALL", "TZ", "USER", "LOGNAME", "TMPDIR")

_LIBC: list = []


def _libc():
    if not _LIBC:
        _LIBC.append(ctypes.CDLL(None, use_errno=True))
    return _LIBC[0]


def _prctl(option: int, value: int) -> None:
    _libc().prctl(option, value, 0, 0, 0)


def die_with_parent(sig: int = signal.SIGKILL) -> None:
    """Ask the kernel to send us `sig` when our parent process dies."""
    _prctl(PR_SET_PDEATHSIG, sig)


def become_subreaper() -> None:
    """Orphaned descendants of our steps get reparented to us, so we can reap and measure them."""
    with contextlib.suppress(OSError, AttributeError):
        _prctl(PR_SET_CHILD_SUBREAPER, 1)


def lower_priority(nice: int) -> None:
    """Demote the calling process: CPU niceness and, for eco (nice 19), idle I/O class."""
    if nice > 0:
        os.setpriority(os.PRIO_PROCESS, 0, max(os.getpriority(os.PRIO_PROCESS, 0), nice))
    if nice >= 19:
        number = SYS_IOPRIO_SET.get(os.uname().machine)
        if number is not None:
            _libc().syscall(number, IOPRIO_WHO_PROCESS, 0, IOPRIO_CLASS_IDLE << 13)


@dataclass
class RunLimits:
    """How this run may execute: its time limit and the priority of its processes."""

    timeout: float
    nice: int = 0
    kill_grace: float = 5.0
    log_max_bytes: int = 10 * 1024 * 1024


@dataclass
class Usage:
    cpu_user_s: float = 0.0
    cpu_system_s: float = 0.0
    peak_rss_kb: int = 0

    def add(self, rusage) -> None:
        self.cpu_user_s += rusage.ru_utime
        self.cpu_system_s += rusage.ru_stime
        self.peak_rss_kb = max(self.peak_rss_kb, rusage.ru_maxrss)


@dataclass
class StepResult:
    exit_code: int | None
    timed_out: bool = False
    error: str | None = None
    usage: Usage = field(default_factory=Usage)


class CappedLog:
    """Writes step output to the run's log file, up to a limit, then a marker and nothing more."""

    def __init__(self, stream: BinaryIO, limit: int, echo: BinaryIO | None = None) -> None:
        self.stream = stream
        self.limit = limit
        self.echo = echo
        self.written = 0
        self.dropped = 0
        self.at_line_start = True

    def write(self, data: bytes) -> None:
        if self.echo is not None:
            self.echo.write(data)
            self.echo.flush()
        room = self.limit - self.written
        if room > 0 and data:
            kept = data[:room]
            self.stream.write(kept)
            self.written += len(kept)
            self.at_line_start = kept.endswith(b"\n")
        self.dropped += max(0, len(data) - max(room, 0))

    def note(self, text: str) -> None:
        line = f"[easyflow] {text}\n".encode()
        self.stream.write(line if self.at_line_start else b"\n" + line)
        self.at_line_start = True
        self.stream.flush()
        if self.echo is not None:
            self.echo.write(line)
            self.echo.flush()

    def close_step(self) -> None:
        if self.dropped:
            self.note(f"output truncated: log limit of {self.limit} bytes reached, "
                      f"{self.dropped} bytes dropped")
            self.dropped = 0
        self.stream.flush()


def step_environment(step: StepSpec, base: dict[str, str] | None = None) -> dict[str, str]:
    """A minimal environment (PATH, HOME, locale, ...) plus what the workflow declares."""
    source = os.environ if base is None else base
    env = {key: source[key] for key in INHERITED_ENV if key in source}
    env.setdefault("PATH", MINIMAL_PATH)
    env.update(step.env)
    return env


def _child_setup() -> None:
    # If the executing process dies, its step dies too instead of running on unwatched.
    die_with_parent()


def _spawn(step: StepSpec, cwd: str | None, env: dict[str, str]) -> subprocess.Popen:
    _libc()  # loaded before fork: the child only calls into it
    return subprocess.Popen(
        step.argv(), cwd=step.cwd or cwd, env=env, stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True,
        preexec_fn=_child_setup, close_fds=True,
    )


def _signal_group(pgid: int, sig: int) -> bool:
    """Signal a process group; False when it has no members left."""
    try:
        os.killpg(pgid, sig)
        return True
    except ProcessLookupError:
        return False
    except PermissionError:
        return True


def _reap_group(pgid: int, usage: Usage, block: bool) -> None:
    """Reap our children in this group (reparented grandchildren included), adding their usage."""
    while True:
        try:
            pid, _status, rusage = os.wait4(-pgid, 0 if block else os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return
        usage.add(rusage)


def _end_group(pgid: int, usage: Usage, grace: float) -> None:
    """Make sure nothing of a finished or timed-out step survives: TERM, wait, KILL, reap."""
    if not _signal_group(pgid, signal.SIGTERM):
        _reap_group(pgid, usage, block=False)
        return
    give_up = time.monotonic() + grace
    while time.monotonic() < give_up:
        _reap_group(pgid, usage, block=False)
        if not _signal_group(pgid, 0):
            return
        time.sleep(0.01)
    _signal_group(pgid, signal.SIGKILL)
    for _ in range(500):
        _reap_group(pgid, usage, block=False)
        if not _signal_group(pgid, 0):
            return
        time.sleep(0.01)


class StepRunner:
    """Runs one step: pumps its output, enforces its deadline, measures it."""

    def __init__(self, proc: subprocess.Popen, log: CappedLog, limits: RunLimits) -> None:
        self.proc = proc
        self.log = log
        self.limits = limits
        self.usage = Usage()
        self.exit_status: int | None = None

    def run(self, deadline: float, cancelled: Callable[[], bool]) -> StepResult:
        timed_out = self._pump(deadline, cancelled)
        if timed_out or self.exit_status is None:
            self._terminate()
        _end_group(self.proc.pid, self.usage, 0 if timed_out else self.limits.kill_grace)
        self._drain_output()
        code = self._exit_code()
        return StepResult(exit_code=code, timed_out=timed_out, usage=self.usage)

    def _pump(self, deadline: float, cancelled: Callable[[], bool]) -> bool:
        """Copy output until the step exits; True if its deadline passed first."""
        selector = selectors.DefaultSelector()
        pidfd = os.pidfd_open(self.proc.pid)
        selector.register(self.proc.stdout, selectors.EVENT_READ, "out")
        selector.register(pidfd, selectors.EVENT_READ, "exit")
        try:
            while self.exit_status is None:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return True
                if cancelled():
                    return False
                for key, _ in selector.select(timeout=min(remaining, 0.5)):
                    if key.data == "out":
                        self._read_some(selector)
                    else:
                        self._collect_exit()
            return False
        finally:
            selector.close()
            os.close(pidfd)

    def _read_some(self, selector) -> None:
        data = os.read(self.proc.stdout.fileno(), READ_CHUNK)
        if data:
            self.log.write(data)
        else:
            selector.unregister(self.proc.stdout)

    def _collect_exit(self) -> None:
        pid, status, rusage = os.wait4(self.proc.pid, 0)
        self.usage.add(rusage)
        self.exit_status = status
        self.proc.returncode = os.waitstatus_to_exitcode(status)

    def _terminate(self) -> None:
        """SIGTERM the whole group, SIGKILL it after the grace period, collect the step."""
        _signal_group(self.proc.pid, signal.SIGTERM)
        give_up = time.monotonic() + self.limits.kill_grace
        while self.exit_status is None and time.monotonic() < give_up:
            self._poll_exit()
            time.sleep(0.01)
        if self.exit_status is None:
            _signal_group(self.proc.pid, signal.SIGKILL)
            self._collect_exit()

    def _poll_exit(self) -> None:
        pid, status, rusage = os.wait4(self.proc.pid, os.WNOHANG)
        if pid:
            self.usage.add(rusage)
            self.exit_status = status
            self.proc.returncode = os.waitstatus_to_exitcode(status)

    def _drain_output(self) -> None:
        """Whatever the step wrote before it ended; the writers are gone, so this ends."""
        os.set_blocking(self.proc.stdout.fileno(), False)
        try:
            while data := os.read(self.proc.stdout.fileno(), READ_CHUNK):
                self.log.write(data)
        except BlockingIOError:
            pass
        self.proc.stdout.close()

    def _exit_code(self) -> int:
        code = os.waitstatus_to_exitcode(self.exit_status)
        return 128 - code if code < 0 else code


def execute_workflow(
    spec: WorkflowSpec,
    limits: RunLimits,
    log_stream: BinaryIO,
    *,
    echo: BinaryIO | None = None,
    on_step_start: Callable[[StepSpec, int], None] | None = None,
    cancelled: Callable[[], bool] = lambda: False,
    environ: dict[str, str] | None = None,
    meter: EnergyMeter | None = None,
) -> Outcome:
    """Run every step in order; the first failing step (unless continue_on_error) ends the run."""
    log = CappedLog(log_stream, limits.log_max_bytes, echo)
    energy_before = meter.read() if meter else None
    run_deadline = time.monotonic() + (spec.timeout or limits.timeout)
    usage = Usage()
    failure: Outcome | None = None
    for step in spec.steps:
        step_deadline = min(run_deadline, time.monotonic() + (step.timeout or float("inf")))
        result = _execute_step(step, spec, limits, log, step_deadline, on_step_start, cancelled,
                               environ)
        usage.cpu_user_s += result.usage.cpu_user_s
        usage.cpu_system_s += result.usage.cpu_system_s
        usage.peak_rss_kb = max(usage.peak_rss_kb, result.usage.peak_rss_kb)
        state = _step_state(result, cancelled())
        if state is RunState.SUCCEEDED:
            continue
        if state is RunState.FAILED and step.continue_on_error:
            log.note(f"step {step.name!r} failed (exit {result.exit_code}); continuing")
            continue
        failure = Outcome(state, result.exit_code, result.error)
        break
    outcome = failure or Outcome(RunState.SUCCEEDED, 0)
    energy = meter.joules_between(energy_before, meter.read()) if meter else None
    return Outcome(outcome.state, outcome.exit_code, outcome.error, round(usage.cpu_user_s, 6),
                   round(usage.cpu_system_s, 6), usage.peak_rss_kb, energy)


def _step_state(result: StepResult, cancelled: bool) -> RunState:
    if result.timed_out:
        return RunState.TIMED_OUT
    if cancelled:
        return RunState.CANCELLED
    return RunState.SUCCEEDED if result.exit_code == 0 else RunState.FAILED


def _execute_step(step, spec, limits, log, deadline, on_step_start, cancelled, environ):
    log.note(f"step {step.name!r}: {' '.join(step.argv())}")
    if step.call:
        return _execute_call(step, spec, log, deadline, cancelled)
    try:
        proc = _spawn(step, spec.source_dir, step_environment(step, environ))
    except OSError as exc:
        code = 127 if exc.errno in (errno.ENOENT, errno.EACCES) else 126
        message = f"step {step.name!r}: cannot execute {step.argv()[0]!r}: {exc.strerror}"
        log.note(message)
        return StepResult(exit_code=code, error=message)
    if on_step_start:
        on_step_start(step, proc.pid)
    result = StepRunner(proc, log, limits).run(deadline, cancelled)
    log.close_step()
    if result.timed_out:
        result.error = f"step {step.name!r} timed out; its process group was killed"
        log.note(result.error)
    elif cancelled():
        result.error = f"step {step.name!r} stopped: run cancelled"
    elif result.exit_code != 0:
        result.error = f"step {step.name!r} exited with code {result.exit_code}"
        log.note(result.error)
    return result


def _execute_call(step, spec, log, deadline, cancelled) -> StepResult:
    """A `call` step, in this process: no fork, no exec (see calls.py for how limits hold)."""
    from easyflow_cli import calls

    before = calls.cpu_seconds()
    directory = step.cwd or spec.source_dir
    try:
        function = calls.resolve(step.call, directory)
        code = calls.call_step(function, step.args, deadline=deadline, cancelled=cancelled,
                               output=log.write, cwd=directory, env=step.env)
        result = StepResult(exit_code=code)
    except calls.StepInterrupted as exc:
        result = StepResult(exit_code=None, timed_out=exc.reason == "timeout")
    except calls.CallFailed as exc:
        result = StepResult(exit_code=exc.exit_code, error=f"step {step.name!r}: {exc}")
    after = calls.cpu_seconds()
    result.usage = Usage(after[0] - before[0], after[1] - before[1], after[2])
    log.close_step()
    if result.timed_out:
        result.error = f"step {step.name!r} timed out; its call was interrupted"
    elif result.exit_code is None:
        result.error = f"step {step.name!r} stopped: run cancelled"
    elif result.exit_code != 0 and result.error is None:
        result.error = f"step {step.name!r} exited with code {result.exit_code}"
    if result.error:
        log.note(result.error)
    return result
