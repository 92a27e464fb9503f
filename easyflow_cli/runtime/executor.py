"""Execute one run's steps as child processes, and measure them.

Each step runs in its own process group (processes.py) with stdin closed and stdout+stderr piped
to the run's log file (capped_log.py), optionally echoed live. A step is spawned at once, unless
its caller must record its process group before it runs (`on_step_start`): then it is forked
and held at a gate until that is done. A step past its time limit gets
SIGTERM to its whole group, then SIGKILL after `kill_grace`. Whatever a step leaves behind in its
group is killed when it exits. CPU and peak RSS come from wait4() of the step and of every
descendant we reap: the executing process is a child subreaper, so orphaned grandchildren are
reaped (and counted) here too.
"""

from __future__ import annotations

import contextlib
import errno
import os
import select
import shlex
import signal
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

from easyflow_cli.core.model import Outcome, RunState
from easyflow_cli.core.spec import StepSpec, WorkflowSpec
from easyflow_cli.runtime import run_cgroup
from easyflow_cli.runtime.capped_log import CappedLog
from easyflow_cli.runtime.children import new_children_stopped
from easyflow_cli.runtime.processes import (
    ParkedStep,
    StepProcess,
    Usage,
    end_group,
    signal_group,
    spawn_step,
)
from easyflow_cli.runtime.protocol import RunLimits
from easyflow_cli.runtime.rapl import EnergyMeter
from easyflow_cli.runtime.run_marker import kill_marked, marker_env
from easyflow_cli.runtime.secrets import RunSecrets, SecretUnavailable, resolve_secrets

if TYPE_CHECKING:
    from easyflow_cli.core.config import Config
    from easyflow_cli.core.model import Mode

READ_CHUNK = 65536
# How often a running step is checked for cancellation; the first check comes soon after its
# start: a worker sends the reports it holds back then, so a step that turns out long is known
# to have started (see worker.py).
CHECK_S = 0.5
FIRST_CHECK_S = 0.005
MINIMAL_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
INHERITED_ENV = ("PATH", "HOME", "LANG", "LC_ALL", "TZ", "USER", "LOGNAME", "TMPDIR")


@dataclass
class StepResult:
    exit_code: int | None
    timed_out: bool = False
    error: str | None = None
    usage: Usage = field(default_factory=Usage)


def step_environment(step: StepSpec, base: dict[str, str] | None = None,
                     declared: dict[str, str] | None = None) -> dict[str, str]:
    """A minimal environment (PATH, HOME, locale, ...) plus what the workflow declares (its
    `env`, or that with the secrets resolved for the run)."""
    source = os.environ if base is None else base
    env = {key: source[key] for key in INHERITED_ENV if key in source}
    env.setdefault("PATH", MINIMAL_PATH)
    env.update(step.env if declared is None else declared)
    return env


class StepRunner:
    """Runs one step: pumps its output, enforces its deadline, measures it."""

    def __init__(self, proc: StepProcess, log: CappedLog, limits: RunLimits) -> None:
        self.proc = proc
        self.log = log
        self.limits = limits
        self.usage = Usage()
        self.exit_status: int | None = None
        self.output_ended = False  # every writer closed the step's output

    def run(self, deadline: float, cancelled: Callable[[], bool]) -> StepResult:
        timed_out = self._pump(deadline, cancelled)
        if timed_out or self.exit_status is None:
            self._terminate()
        end_group(self.proc.pid, self.usage, 0 if timed_out else self.limits.kill_grace)
        self._drain_output()
        code = self._exit_code()
        return StepResult(exit_code=code, timed_out=timed_out, usage=self.usage)

    def _pump(self, deadline: float, cancelled: Callable[[], bool]) -> bool:
        """Copy output until the step exits; True if its deadline passed first.

        Cancellation is first checked FIRST_CHECK_S after the start, not at once, and then
        every CHECK_S, however much the step writes: the check also sends the reports held
        back (worker.py), and a step that ends sooner goes with its run's end in one report."""
        poller = select.poll()  # cheaper than an epoll set up and closed for every step
        out = self.proc.stdout.fileno()
        pidfd = os.pidfd_open(self.proc.pid)
        poller.register(out, select.POLLIN)
        poller.register(pidfd, select.POLLIN)
        next_check = time.monotonic() + FIRST_CHECK_S
        try:
            while True:
                wait = max(0.0, min(deadline, next_check) - time.monotonic())
                for fd, _ in poller.poll(wait * 1000):
                    if fd == out:
                        self._read_some(poller)
                    else:
                        self._collect_exit()
                if self.exit_status is not None:
                    return False
                now = time.monotonic()
                if now >= deadline:
                    return True
                if now >= next_check:
                    if cancelled():
                        return False
                    next_check = now + CHECK_S
        finally:
            os.close(pidfd)

    def _read_some(self, poller: select.poll) -> None:
        data = os.read(self.proc.stdout.fileno(), READ_CHUNK)
        if data:
            self.log.write(data)
        else:
            poller.unregister(self.proc.stdout.fileno())
            self.output_ended = True

    def _collect_exit(self) -> None:
        pid, status, rusage = os.wait4(self.proc.pid, 0)
        self.usage.add(rusage)
        self.exit_status = status
        self.proc.returncode = os.waitstatus_to_exitcode(status)

    def _terminate(self) -> None:
        """SIGTERM the whole group, SIGKILL it after the grace period, collect the step."""
        signal_group(self.proc.pid, signal.SIGTERM)
        give_up = time.monotonic() + self.limits.kill_grace
        while self.exit_status is None and time.monotonic() < give_up:
            self._poll_exit()
            time.sleep(0.01)
        if self.exit_status is None:
            signal_group(self.proc.pid, signal.SIGKILL)
            self._collect_exit()

    def _poll_exit(self) -> None:
        pid, status, rusage = os.wait4(self.proc.pid, os.WNOHANG)
        if pid:
            self.usage.add(rusage)
            self.exit_status = status
            self.proc.returncode = os.waitstatus_to_exitcode(status)

    def _drain_output(self) -> None:
        """Whatever the step wrote before it ended; the writers are gone, so this ends."""
        if self.output_ended:
            self.proc.stdout.close()
            return
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


@dataclass(frozen=True)
class _RunMark:
    """What marks a run's processes (run_marker.py, run_cgroup.py), and who is told when a
    step begins and where a spawned step runs."""

    run_id: int | None
    token: str | None
    cgroup: Path | None
    on_step_begin: Callable[[], object] | None
    on_step_spawned: Callable[[int], object] | None
    on_step_ended: Callable[[], object] | None = None


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
    token: str | None = None,
    cgroup: Path | None = None,
    on_step_begin: Callable[[], object] | None = None,
    on_step_spawned: Callable[[int], object] | None = None,
    on_step_ended: Callable[[], object] | None = None,
) -> Outcome:
    """Run every step in order; the first failing step (unless continue_on_error) ends the run.

    `on_step_start(step, pgid)` is called while the step is parked before its program runs, so
    its process group can be recorded first; returning False stops the run there. Without it,
    a command step is spawned at once and `on_step_spawned(pgid)` told afterwards, and
    `on_step_ended()` once nothing of its process group is left. Steps carry
    the run's mark (run_marker.py): `EASYFLOW_RUN_ID` when `run_id` is given, and the token
    when there is one; command steps join `cgroup` (run_cgroup.py) when it is given.
    `on_step_begin()` is called before each step's program or function runs. The outcome's
    duration is monotonic time: the wall clock may jump while a run executes.
    """
    began = time.monotonic()
    try:
        secrets = resolve_secrets(spec, os.environ if environ is None else environ)
    except SecretUnavailable as exc:
        CappedLog(log_stream, limits.log_max_bytes, echo).note(str(exc))
        return Outcome(RunState.FAILED, error=str(exc),
                       duration_s=round(time.monotonic() - began, 6))
    log = CappedLog(log_stream, limits.log_max_bytes, echo, secrets.values)
    energy_before = meter.read() if meter else None
    run_deadline = began + (spec.timeout or limits.timeout)
    usage = Usage()
    try:
        failure = _execute_steps(spec, limits, log, usage, run_deadline, on_step_start,
                                 cancelled, environ, secrets,
                                 _RunMark(run_id, token, cgroup, on_step_begin, on_step_spawned,
                                          on_step_ended))
    finally:
        log.close()
    outcome = failure or Outcome(RunState.SUCCEEDED, 0)
    if log.failure is not None:
        note = f"run log incomplete: {log.failure}"
        outcome = Outcome(outcome.state, outcome.exit_code,
                          f"{outcome.error}; {note}" if outcome.error else note)
    if outcome.error:  # an exception's text may quote a secret: the error is stored
        outcome = Outcome(outcome.state, outcome.exit_code, log.mask.hide(outcome.error))
    energy = meter.joules_between(energy_before, meter.read()) if meter else None
    return Outcome(outcome.state, outcome.exit_code, outcome.error, round(usage.cpu_user_s, 6),
                   round(usage.cpu_system_s, 6), usage.peak_rss_kb, energy,
                   round(time.monotonic() - began, 6))


def _execute_steps(spec: WorkflowSpec, limits: RunLimits, log: CappedLog, usage: Usage,
                   run_deadline: float,
                   on_step_start: Callable[[StepSpec, int], bool | None] | None,
                   cancelled: Callable[[], bool], environ: dict[str, str] | None,
                   secrets: RunSecrets, mark: _RunMark) -> Outcome | None:
    """The steps in order, their usage added to `usage`; how the first failing one ended."""
    for step in spec.steps:
        step_deadline = min(run_deadline, time.monotonic() + (step.timeout or float("inf")))
        if mark.on_step_begin is not None:
            mark.on_step_begin()
        result = _execute_step(step, spec, limits, log, step_deadline, on_step_start, cancelled,
                               environ, secrets, mark)
        if result.timed_out:
            _stop_escapees(mark.run_id, mark.token, mark.cgroup)
        usage.cpu_user_s += result.usage.cpu_user_s
        usage.cpu_system_s += result.usage.cpu_system_s
        usage.peak_rss_kb = max(usage.peak_rss_kb, result.usage.peak_rss_kb)
        state = _step_state(result, cancelled())
        if state is RunState.SUCCEEDED:
            continue
        if state is RunState.FAILED and step.continue_on_error:
            log.note(f"step {step.name!r} failed (exit {result.exit_code}); continuing")
            continue
        return Outcome(state, result.exit_code, result.error)
    return None


def _stop_escapees(run_id: int | None, token: str | None, cgroup: Path | None) -> None:
    """After a timeout, escapees of the subreaper too (a step that made itself one): a timeout
    is rare enough to afford a look through /proc."""
    if cgroup is not None:
        run_cgroup.kill(cgroup)
    if run_id is not None and token:
        kill_marked([run_id], [token])


def _step_state(result: StepResult, cancelled: bool) -> RunState:
    if result.timed_out:
        return RunState.TIMED_OUT
    if cancelled:
        return RunState.CANCELLED
    return RunState.SUCCEEDED if result.exit_code == 0 else RunState.FAILED


def command_line(step: StepSpec) -> str:
    """The step's command as a shell would read it back: a shell step as it was written, an
    argv quoted word by word (so `echo 'a b'` does not read as two arguments)."""
    return step.run[0] if step.shell else shlex.join(step.argv())


def _execute_step(step: StepSpec, spec: WorkflowSpec, limits: RunLimits, log: CappedLog,
                  deadline: float, on_step_start: Callable[[StepSpec, int], bool | None] | None,
                  cancelled: Callable[[], bool], environ: dict[str, str] | None,
                  secrets: RunSecrets, mark: _RunMark) -> StepResult:
    log.header(f"step {step.name!r}: {command_line(step)}")
    declared = secrets.environment(step)
    marker = marker_env(mark.run_id, mark.token)
    if step.call:
        return _execute_call(step, spec, log, deadline, cancelled, {**declared, **marker})
    env = step_environment(step, environ, declared)
    env.update(marker)
    with new_children_stopped():  # escapees from its group (setsid, double fork) end with it
        started = (_parked(step, spec, env, log, on_step_start, mark.cgroup)
                   if on_step_start is not None else _spawned(step, spec, env, log, mark))
        if isinstance(started, StepResult):
            return started
        return _run_command(step, started, limits, log, deadline, cancelled, mark)


def _spawned(step: StepSpec, spec: WorkflowSpec, env: dict[str, str], log: CappedLog,
             mark: _RunMark) -> StepProcess | StepResult:
    """The step's program started at once, in its run's cgroup; then whoever watches is told
    its process group (a crash before that finds it by its mark and its session)."""
    try:
        with _spawning_into(mark.cgroup, log):
            proc = spawn_step(step.argv(), step.cwd or spec.source_dir, env)
    except OSError as exc:
        return _not_executed(step, exc, log)
    if mark.on_step_spawned is not None:
        mark.on_step_spawned(proc.pid)
    return proc


def _parked(step: StepSpec, spec: WorkflowSpec, env: dict[str, str], log: CappedLog,
            on_step_start: Callable[[StepSpec, int], bool | None],
            cgroup: Path | None) -> StepProcess | StepResult:
    """The step forked and held until `on_step_start` has recorded its process group."""
    try:
        parked = ParkedStep(step.argv(), step.cwd or spec.source_dir, env)
    except OSError as exc:
        message = f"step {step.name!r}: cannot start a process: {exc.strerror}"
        log.note(message)
        return StepResult(exit_code=126, error=message)
    if cgroup is not None:
        _join(cgroup, parked.pid, log)
    if on_step_start(step, parked.pid) is False:
        parked.abandon()
        return StepResult(exit_code=None, error=f"step {step.name!r} not started: run stopped")
    try:
        return parked.release()
    except OSError as exc:
        return _not_executed(step, exc, log)


def _not_executed(step: StepSpec, exc: OSError, log: CappedLog) -> StepResult:
    code = 127 if exc.errno in (errno.ENOENT, errno.EACCES, errno.ENOTDIR) else 126
    message = f"step {step.name!r}: cannot execute {step.argv()[0]!r}: {exc.strerror}"
    log.note(message)
    return StepResult(exit_code=code, error=message)


def _run_command(step: StepSpec, proc: StepProcess, limits: RunLimits, log: CappedLog,
                 deadline: float, cancelled: Callable[[], bool], mark: _RunMark) -> StepResult:
    result = StepRunner(proc, log, limits).run(deadline, cancelled)
    if mark.on_step_ended is not None:  # before `cancelled()`, which may send reports
        mark.on_step_ended()
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


@contextlib.contextmanager
def _spawning_into(cgroup: Path | None, log: CappedLog) -> Iterator[None]:
    """This process in the run's cgroup while it spawns a step, so that the step begins in it."""
    if cgroup is None or not _join(cgroup, os.getpid(), log):
        yield
        return
    try:
        yield
    finally:
        run_cgroup.leave(cgroup)


def _join(cgroup: Path, pid: int, log: CappedLog) -> bool:
    try:
        run_cgroup.join(cgroup, pid)
        return True
    except OSError as exc:  # contained by its mark alone, as where no cgroup is delegated
        log.note(f"the step's process could not join cgroup {cgroup}: {exc.strerror}")
        return False


def _execute_call(step: StepSpec, spec: WorkflowSpec, log: CappedLog, deadline: float,
                  cancelled: Callable[[], bool], env: dict[str, str]) -> StepResult:
    """A `call` step, in this process: no fork, no exec (see calls.py for how limits hold)."""
    from easyflow_cli.runtime import calls

    assert step.call is not None, "only a call step runs in this process"
    before = calls.cpu_seconds()
    directory = step.cwd or spec.source_dir
    try:
        function = calls.resolve(step.call, directory)
        code = calls.call_step(function, step.args, deadline=deadline, cancelled=cancelled,
                               output=log.write, cwd=directory,
                               env=env)
        result = StepResult(exit_code=code)
    except calls.StepInterrupted as exc:
        result = StepResult(exit_code=None, timed_out=exc.reason == "timeout")
    except calls.CallFailed as exc:
        log.write(exc.details.encode(errors="replace"))
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
