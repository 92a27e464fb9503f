"""Python-callable steps: `call = "package.module:function"`, run inside the executing process.

A warm worker has already paid for its interpreter, so a callable step costs a function call
instead of a fork and an exec. The function is imported once per process and cached. It gets
the step's `args` as positional strings, runs with the step's `cwd` and `env` applied (and
restored after), and its `print()`s go to the run's log.

Time limit and cancellation are enforced in-process with SIGALRM, not in a forked child: a fork
per step would give back most of what the warm worker saved. An interval timer ticks every
half second (the same cadence at which command steps are checked); its handler raises
`StepInterrupted` in the step's own code when the deadline has passed or the run was cancelled.
`StepInterrupted` derives from BaseException so a step's `except Exception` cannot swallow it.
A worker keeps the handler installed and lets a tick outlive its call, so that a run of short
calls shares the timer's ticks instead of arming and disarming it around each call.
Limits of this choice: a step stuck inside C code that does not return to the interpreter is
only stopped when its worker is killed (a drain does that after its grace), and a step must not
use SIGALRM itself. Output written straight to file descriptor 1 or 2 (not through
`sys.stdout`) does not reach the log.
"""

from __future__ import annotations

import atexit
import contextlib
import importlib
import io
import os
import resource
import signal
import sys
import time
import traceback
from collections.abc import Callable, Iterator
from types import FrameType
from typing import Any

from easyflow_cli.runtime.children import new_children_stopped

TICK_SECONDS = 0.5
# The first check comes soon after the start: a worker sends the reports it holds back then,
# so a call that turns out long is known to have started (see worker.py).
FIRST_TICK_SECONDS = 0.005

_CACHE: dict[tuple[str | None, str], Callable[..., Any]] = {}


class StepInterrupted(BaseException):
    """Raised inside a callable step when its time is up or its run was cancelled."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason  # "timeout" | "cancelled"


class CallFailed(Exception):
    """The callable could not be imported, or raised: the message is one line (for the run's
    error), `details` the traceback behind it (for the run's log), when there is one to tell."""

    def __init__(self, message: str, exit_code: int = 1, details: str = "") -> None:
        super().__init__(message)
        self.exit_code = exit_code
        self.details = details


def resolve(target: str, directory: str | None = None) -> Callable[..., Any]:
    """The function `target` ("package.module:function") names, imported once and cached.

    `directory` (the step's cwd or the workflow file's) is searched first, so a module next to
    its workflow file imports without installing it.
    """
    key = (directory, target)
    if key not in _CACHE:
        _CACHE[key] = _import(target, directory)
    return _CACHE[key]


def _import(target: str, directory: str | None) -> Callable[..., Any]:
    module_name, _, attribute = target.partition(":")
    added = directory if directory is not None and directory not in sys.path else None
    if added is not None:
        sys.path.insert(0, added)
    try:
        obj: Any = importlib.import_module(module_name)
        for part in attribute.split("."):
            obj = getattr(obj, part)
    except (ModuleNotFoundError, AttributeError) as exc:  # the one line says all
        raise CallFailed(f"cannot import {target!r}: {one_line(exc)}") from None
    except Exception as exc:  # the module itself raised while it was imported
        raise CallFailed(f"cannot import {target!r}: {one_line(exc)}",
                         details=traceback_text(exc)) from None
    finally:
        if added is not None:
            sys.path.remove(added)
    if not callable(obj):
        raise CallFailed(f"{target!r} is not callable")
    return obj


def one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__


def call_step(function: Callable[..., Any], args: tuple[str, ...], *, deadline: float,
              cancelled: Callable[[], bool], output: Callable[[bytes], None],
              cwd: str | None = None, env: dict[str, str] | None = None) -> int:
    """Run the function; returns its exit code (0, or SystemExit's code).

    Raises StepInterrupted on timeout or cancellation and CallFailed when the function raises.
    """
    stream = _LogStream(output)
    with new_children_stopped(), _interrupts(deadline, cancelled), _applied(cwd, env), \
            contextlib.redirect_stdout(stream), contextlib.redirect_stderr(stream):
        try:
            function(*args)
        except SystemExit as exc:
            return _exit_code(exc.code)
        except StepInterrupted:
            raise
        except Exception as exc:
            raise CallFailed(one_line(exc), details=traceback_text(exc)) from None
        finally:
            stream.flush()
    return 0


def traceback_text(exc: BaseException) -> str:
    """The traceback Python would print, from the step's code down (the frame of this module
    that called it is left out)."""
    tb = exc.__traceback__.tb_next if exc.__traceback__ else None
    return "".join(traceback.format_exception(type(exc), exc, tb))


def _exit_code(code: Any) -> int:
    if code is None:
        return 0
    return code if isinstance(code, int) else 1


def cpu_seconds() -> tuple[float, float, int]:
    """This process's user and system CPU seconds and peak RSS (KiB), to measure a call."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime, usage.ru_stime, usage.ru_maxrss


# The call under watch (its deadline and cancellation check), for the tick handler.
_watched: tuple[float, Callable[[], bool]] | None = None
_armed_until = 0.0  # monotonic time of the tick armed, 0.0 when none is
_handler_kept = False  # the handler stays for the process's life (keep_tick_handler)


def keep_tick_handler() -> None:
    """Install the tick handler for good, and let an armed tick outlive its call: a process
    running many short calls in a row (a worker) then arms the timer only when no tick comes
    soon enough already, not twice per call. A tick between calls checks nothing."""
    global _handler_kept
    signal.signal(signal.SIGALRM, _on_tick)
    _handler_kept = True
    # A tick left armed must not reach the process once Python has given SIGALRM back to its
    # default action, on the way out: that would end it by the signal instead of its status.
    atexit.register(_disarm)


@contextlib.contextmanager
def _interrupts(deadline: float, cancelled: Callable[[], bool]) -> Iterator[None]:
    """SIGALRM every tick until the block ends; the handler decides whether to interrupt."""
    global _watched
    if time.monotonic() >= deadline:
        raise StepInterrupted("timeout")
    previous = None if _handler_kept else signal.signal(signal.SIGALRM, _on_tick)
    _watched = (deadline, cancelled)
    _arm_within(min(FIRST_TICK_SECONDS, _next_tick(deadline)))
    try:
        yield
    finally:
        _watched = None
        if not _handler_kept:
            _disarm()
            signal.signal(signal.SIGALRM, previous)


def _on_tick(signum: int, frame: FrameType | None) -> None:
    global _armed_until
    _armed_until = 0.0
    watched = _watched
    if watched is None:
        return
    deadline, cancelled = watched
    if time.monotonic() >= deadline:
        raise StepInterrupted("timeout")
    if cancelled():
        raise StepInterrupted("cancelled")
    _arm_within(_next_tick(deadline))


def _arm_within(seconds: float) -> None:
    """A tick within `seconds`: the one armed already if it comes by then."""
    global _armed_until
    now = time.monotonic()
    if 0.0 < _armed_until <= now + seconds:
        return
    signal.setitimer(signal.ITIMER_REAL, seconds)
    _armed_until = now + seconds


def _disarm() -> None:
    global _armed_until
    signal.setitimer(signal.ITIMER_REAL, 0)
    _armed_until = 0.0


def _next_tick(deadline: float) -> float:
    return max(0.001, min(TICK_SECONDS, deadline - time.monotonic()))


@contextlib.contextmanager
def _applied(cwd: str | None, env: dict[str, str] | None) -> Iterator[None]:
    """The step's working directory and extra environment, undone afterwards."""
    old_cwd = os.getcwd() if cwd else None
    saved = {key: os.environ.get(key) for key in env or {}}
    try:
        if cwd:
            os.chdir(cwd)
        os.environ.update(env or {})
        yield
    finally:
        if old_cwd:
            os.chdir(old_cwd)
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


class _LogStream(io.TextIOBase):
    """What the callable prints, as bytes to the run's (capped) log."""

    def __init__(self, output: Callable[[bytes], None]) -> None:
        self.output = output

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        if text:
            self.output(text.encode(errors="replace"))
        return len(text)
