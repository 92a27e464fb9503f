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
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, BinaryIO

from easyflow_cli.core.model import Outcome, RunState
from easyflow_cli.core.spec import StepSpec, WorkflowSpec
from easyflow_cli.runtime.children import new_children_stopped
from easyflow_cli.runtime.protocol import RunLimits
from easyflow_cli.runtime.rapl import EnergyMeter

if TYPE_CHECKING:
    from resource import struct_rusage

    from easyflow_cli.core.config import Config
    from easyflow_cli.core.model import Mode

PR_SET_PDEATHSIG = 1
PR_SET_CHILD_SUBREAPER = 36
IOPRIO_WHO_PROCESS = 1
IOPRIO_CLASS_IDLE = 3
SYS_IOPRIO_SET = {"x86_64": 251, "aarch64": 30}
READ_CHUNK = 65536
MINIMAL_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
INHERITED_ENV = ("PATH", "HOME", "LANG", "LC_ALL", "TZ", "USER", "LOGNAME", "TMPDIR")

_LIBC: list = []


def _libc() -> ctypes.CDLL:
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
class Usage:
    cpu_user_s: float = 0.0
    cpu_system_s: float = 0.0
    peak_rss_kb: int = 0

    def add(self, rusage: struct_rusage) -> None:
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
    """Writes step output to the run's log file, up to a limit, then a marker and nothing more.

    A log that cannot be written (disk full, read-only) never stops the run: its output is
    then dropped and `failure` says why.
    """

    def __init__(self, stream: BinaryIO, limit: int, echo: BinaryIO | None = None) -> None:
        self.stream = stream
        self.limit = limit
        self.echo = echo
        self.written = 0
        self.dropped = 0
        self.at_line_start = True
        self.failure: str | None = None

    def _put(self, data: bytes) -> None:
        if self.failure is not None:
            return
        try:
            self.stream.write(data)
            self.stream.flush()
        except OSError as exc:
            self.failure = exc.strerror or str(exc)

    def write(self, data: bytes) -> None:
        if self.echo is not None:
            self.echo.write(data)
            self.echo.flush()
        room = self.limit - self.written
        if room > 0 and data:
            kept = data[:room]
            self._put(kept)
            self.written += len(kept)
            self.at_line_start = kept.endswith(b"\n")
        self.dropped += max(0, len(data) - max(room, 0))

    def note(self, text: str) -> None:
        line = f"[easyflow] {text}\n".encode()
        self._put(line if self.at_line_start else b"\n" + line)
        self.at_line_start = True
        if self.echo is not None:
            self.echo.write(line)
            self.echo.flush()

    def close_step(self) -> None:
        if self.dropped:
            self.note(f"output truncated: log limit of {self.limit} bytes reached, "
                      f"{self.dropped} bytes dropped")
            self.dropped = 0


def step_environment(step: StepSpec, base: dict[str, str] | None = None) -> dict[str, str]:
    """A minimal environment (PATH, HOME, locale, ...) plus what the workflow declares."""
    source = os.environ if base is None else base
    env = {key: source[key] for key in INHERITED_ENV if key in source}
    env.setdefault("PATH", MINIMAL_PATH)
    env.update(step.env)
    return env


@dataclass
class StepProcess:
    """A step's leader process once it runs the step's program: what StepRunner drives."""

    pid: int
    stdout: BinaryIO
    returncode: int | None = None


class ParkedStep:
    """A forked step held at a gate before it executes anything of the workflow.

    The parent learns the pid (= the process group) first, records it where a crash can find
    it, and only then lets the step run: no step program ever runs unrecorded.
    """

    def __init__(self, argv: list[str], cwd: str | None, env: dict[str, str]) -> None:
        out_r, out_w = os.pipe()
        gate_r, self.gate_w = os.pipe()
        self.report_r, report_w = os.pipe()
        parent = os.getpid()
        _libc()  # loaded before fork: the child only calls into it
        self.pid = os.fork()
        if self.pid == 0:
            _exec_in_child(argv, cwd, env, parent, (out_r, self.gate_w, self.report_r),
                           out_w, gate_r, report_w)
        for fd in (out_w, gate_r, report_w):
            os.close(fd)
        self.stdout = open(out_r, "rb", buffering=0)  # noqa: SIM115 (StepRunner closes it)

    def release(self) -> StepProcess:
        """Let the step run; raises OSError if its program cannot be executed."""
        os.write(self.gate_w, b"go")
        os.close(self.gate_w)
        with open(self.report_r, "rb") as report:
            failure = report.read()  # empty: the exec succeeded (the pipe is close-on-exec)
        if failure:
            self._reap()
            code = int(failure)
            raise OSError(code, os.strerror(code))
        return StepProcess(self.pid, self.stdout)

    def abandon(self) -> None:
        """Never run it: the step exits at the closed gate, and is reaped."""
        os.close(self.gate_w)
        os.close(self.report_r)
        self._reap()

    def _reap(self) -> None:
        self.stdout.close()
        os.waitpid(self.pid, 0)


def _exec_in_child(argv: list[str], cwd: str | None, env: dict[str, str], parent: int,
                   parent_ends: tuple[int, ...], out_w: int, gate_r: int,
                   report_w: int) -> None:
    """In the forked child: own session, die with the parent, wait at the gate, exec."""
    try:
        for fd in parent_ends:
            os.close(fd)
        os.setsid()
        # If the executing process dies, its step dies too instead of running on unwatched;
        # the check closes the window where the parent died before the prctl took effect.
        die_with_parent()
        if os.getppid() != parent:
            os._exit(1)
        for sig in (signal.SIGPIPE, signal.SIGXFSZ):  # Python ignores these; programs expect them
            signal.signal(sig, signal.SIG_DFL)
        devnull = os.open(os.devnull, os.O_RDONLY)
        os.dup2(devnull, 0)
        os.dup2(out_w, 1)
        os.dup2(out_w, 2)
        if os.read(gate_r, 2) != b"go":
            os._exit(1)
        os.closerange(3, report_w)  # the gate included; the report pipe closes on exec
        os.closerange(report_w + 1, os.sysconf("SC_OPEN_MAX"))
        if cwd:
            os.chdir(cwd)
        os.execvpe(argv[0], argv, env)
    except OSError as exc:
        with contextlib.suppress(OSError):
            os.write(report_w, str(exc.errno or errno.EIO).encode())
    finally:
        os._exit(127)


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

    def __init__(self, proc: StepProcess, log: CappedLog, limits: RunLimits) -> None:
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

    def _read_some(self, selector: selectors.BaseSelector) -> None:
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
        assert self.exit_status is not None, "asked before the step was reaped"
        code = os.waitstatus_to_exitcode(self.exit_status)
        return 128 - code if code < 0 else code


def execute_workflow(
    spec: WorkflowSpec,
    limits: RunLimits,
    log_stream: BinaryIO,
    *,
    echo: BinaryIO | None = None,
    on_step_start: Callable[[StepSpec, int], bool | None] | None = None,
    cancelled: Callable[[], bool] = lambda: False,
    environ: dict[str, str] | None = None,
    meter: EnergyMeter | None = None,
    run_id: int | None = None,
) -> Outcome:
    """Run every step in order; the first failing step (unless continue_on_error) ends the run.

    `on_step_start(step, pgid)` is called while the step is parked before its program runs, so
    its process group can be recorded first; returning False stops the run there. Steps see
    `EASYFLOW_RUN_ID` when `run_id` is given. The outcome's duration is monotonic time: the
    wall clock may jump while a run executes.
    """
    began = time.monotonic()
    log = CappedLog(log_stream, limits.log_max_bytes, echo)
    energy_before = meter.read() if meter else None
    run_deadline = began + (spec.timeout or limits.timeout)
    usage = Usage()
    failure: Outcome | None = None
    for step in spec.steps:
        step_deadline = min(run_deadline, time.monotonic() + (step.timeout or float("inf")))
        result = _execute_step(step, spec, limits, log, step_deadline, on_step_start, cancelled,
                               environ, run_id)
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
    if log.failure is not None:
        note = f"run log incomplete: {log.failure}"
        outcome = Outcome(outcome.state, outcome.exit_code,
                          f"{outcome.error}; {note}" if outcome.error else note)
    energy = meter.joules_between(energy_before, meter.read()) if meter else None
    return Outcome(outcome.state, outcome.exit_code, outcome.error, round(usage.cpu_user_s, 6),
                   round(usage.cpu_system_s, 6), usage.peak_rss_kb, energy,
                   round(time.monotonic() - began, 6))


def _step_state(result: StepResult, cancelled: bool) -> RunState:
    if result.timed_out:
        return RunState.TIMED_OUT
    if cancelled:
        return RunState.CANCELLED
    return RunState.SUCCEEDED if result.exit_code == 0 else RunState.FAILED


def _execute_step(step: StepSpec, spec: WorkflowSpec, limits: RunLimits, log: CappedLog,
                  deadline: float, on_step_start: Callable[[StepSpec, int], bool | None] | None,
                  cancelled: Callable[[], bool], environ: dict[str, str] | None,
                  run_id: int | None) -> StepResult:
    log.note(f"step {step.name!r}: {' '.join(step.argv())}")
    if step.call:
        return _execute_call(step, spec, log, deadline, cancelled, run_id)
    env = step_environment(step, environ)
    env.update(_run_marker(run_id))
    with new_children_stopped():  # escapees from its group (setsid, double fork) end with it
        return _execute_command(step, spec, limits, log, deadline, on_step_start, cancelled, env)


def _execute_command(step: StepSpec, spec: WorkflowSpec, limits: RunLimits, log: CappedLog,
                     deadline: float,
                     on_step_start: Callable[[StepSpec, int], bool | None] | None,
                     cancelled: Callable[[], bool], env: dict[str, str]) -> StepResult:
    try:
        parked = ParkedStep(step.argv(), step.cwd or spec.source_dir, env)
    except OSError as exc:
        message = f"step {step.name!r}: cannot start a process: {exc.strerror}"
        log.note(message)
        return StepResult(exit_code=126, error=message)
    if on_step_start is not None and on_step_start(step, parked.pid) is False:
        parked.abandon()
        return StepResult(exit_code=None, error=f"step {step.name!r} not started: run stopped")
    try:
        proc = parked.release()
    except OSError as exc:
        code = 127 if exc.errno in (errno.ENOENT, errno.EACCES, errno.ENOTDIR) else 126
        message = f"step {step.name!r}: cannot execute {step.argv()[0]!r}: {exc.strerror}"
        log.note(message)
        return StepResult(exit_code=code, error=message)
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


def _run_marker(run_id: int | None) -> dict[str, str]:
    return {} if run_id is None else {"EASYFLOW_RUN_ID": str(run_id)}


def _execute_call(step: StepSpec, spec: WorkflowSpec, log: CappedLog, deadline: float,
                  cancelled: Callable[[], bool], run_id: int | None) -> StepResult:
    """A `call` step, in this process: no fork, no exec (see calls.py for how limits hold)."""
    from easyflow_cli.runtime import calls

    assert step.call is not None, "only a call step runs in this process"
    before = calls.cpu_seconds()
    directory = step.cwd or spec.source_dir
    try:
        function = calls.resolve(step.call, directory)
        code = calls.call_step(function, step.args, deadline=deadline, cancelled=cancelled,
                               output=log.write, cwd=directory,
                               env={**step.env, **_run_marker(run_id)})
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

def limits_for(config: Config, mode: Mode | str) -> RunLimits:
    """The mode's profile: its pool's timeout and niceness, and the daemon-wide limits."""
    pool = config.pool(mode)
    return RunLimits(timeout=pool.timeout, nice=pool.nice, kill_grace=config.kill_grace,
                     log_max_bytes=config.log_max_bytes)
