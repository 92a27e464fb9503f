"""The processes of a run's steps, below the executor: the executing process's own set-up (die
with its parent, adopt orphans, lower its priority), a step started in its own process group —
spawned at once, or forked and held at a gate until its group is recorded — and ending a group
with all it left behind. CPU and peak RSS are summed from wait4() of every process reaped.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import os
import signal
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, BinaryIO

if TYPE_CHECKING:
    from resource import struct_rusage

PR_SET_PDEATHSIG = 1
PR_SET_CHILD_SUBREAPER = 36
IOPRIO_WHO_PROCESS = 1
IOPRIO_CLASS_IDLE = 3
SYS_IOPRIO_SET = {"x86_64": 251, "aarch64": 30}
# Python ignores these; the programs a step runs expect their default action.
RESET_SIGNALS = (signal.SIGPIPE, signal.SIGXFSZ)

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
class StepProcess:
    """A step's leader process once it runs the step's program: what StepRunner drives."""

    pid: int
    stdout: BinaryIO
    returncode: int | None = None


def spawn_step(argv: list[str], cwd: str | None, env: dict[str, str]) -> StepProcess:
    """Start a step's program now, in a process group of its own within this process's session.

    posix_spawn (vfork and exec, as strace shows: `clone3(CLONE_VM|CLONE_VFORK)`) copies
    nothing of this process, where a fork of a Python process copies its page tables and then
    pays a fault for each page either side writes before the exec. The program is found on the
    step's own PATH, as execvpe finds it. Raises OSError if it cannot be executed (its working
    directory missing included)."""
    out_r, out_w = os.pipe()
    devnull = os.open(os.devnull, os.O_RDONLY)
    actions = [(os.POSIX_SPAWN_DUP2, devnull, 0), (os.POSIX_SPAWN_DUP2, out_w, 1),
               (os.POSIX_SPAWN_DUP2, out_w, 2)]
    try:
        with _working_directory(cwd):
            pid = _spawn_on_path(argv, env, actions)
    except OSError:
        os.close(out_r)
        raise
    finally:
        os.close(out_w)
        os.close(devnull)
    return StepProcess(pid, open(out_r, "rb", buffering=0))  # noqa: SIM115 (StepRunner closes it)


def _spawn_on_path(argv: list[str], env: dict[str, str], actions: list) -> int:
    """Each candidate of the step's PATH in turn, skipping the missing without a spawn; the
    first other failure is the one raised (os.execvpe's rule)."""
    name = argv[0]
    candidates = [name] if os.sep in name else [os.path.join(directory, name)
                                                for directory in os.get_exec_path(env)]
    first_failure: OSError | None = None
    last_failure: OSError = FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT), name)
    for path in candidates:
        try:
            if len(candidates) > 1:  # a spawn that fails costs more than a stat
                os.stat(path)
            return os.posix_spawn(path, argv, env, file_actions=actions, setpgroup=0,
                                  setsigdef=RESET_SIGNALS)
        except (FileNotFoundError, NotADirectoryError) as exc:
            last_failure = exc
        except OSError as exc:
            last_failure = exc
            first_failure = first_failure or exc
    raise first_failure or last_failure


@contextlib.contextmanager
def _working_directory(cwd: str | None) -> Iterator[None]:
    """This process's working directory for a moment (posix_spawn has no such attribute)."""
    if not cwd:
        yield
        return
    back = os.open(".", os.O_PATH | os.O_DIRECTORY)
    try:
        os.chdir(cwd)
        yield
    finally:
        os.fchdir(back)
        os.close(back)


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
        for sig in RESET_SIGNALS:
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


def signal_group(pgid: int, sig: int) -> bool:
    """Signal a process group; False when it has no members left."""
    try:
        os.killpg(pgid, sig)
        return True
    except ProcessLookupError:
        return False
    except PermissionError:
        return True


def reap_group(pgid: int, usage: Usage, block: bool) -> None:
    """Reap our children in this group (reparented grandchildren included), adding their usage."""
    while True:
        try:
            pid, _status, rusage = os.wait4(-pgid, 0 if block else os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return
        usage.add(rusage)


def end_group(pgid: int, usage: Usage, grace: float) -> None:
    """Make sure nothing of a finished or timed-out step survives: TERM, wait, KILL, reap."""
    if not signal_group(pgid, signal.SIGTERM):
        reap_group(pgid, usage, block=False)
        return
    give_up = time.monotonic() + grace
    while time.monotonic() < give_up:
        reap_group(pgid, usage, block=False)
        if not signal_group(pgid, 0):
            return
        time.sleep(0.01)
    signal_group(pgid, signal.SIGKILL)
    for _ in range(500):
        reap_group(pgid, usage, block=False)
        if not signal_group(pgid, 0):
            return
        time.sleep(0.01)
