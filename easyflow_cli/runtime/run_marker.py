"""The mark every process of a run carries, and finding and killing processes by it.

A step can leave its process group (`setsid`) and its parent (a double fork), and the worker
that watched it may be killed; but every process it starts inherits its environment. Each step
gets `EASYFLOW_RUN_ID` and `EASYFLOW_DAEMON_TOKEN`, a random token of the daemon (or foreground
runner) that executes it: run ids are unique only within one state directory, and the token
tells this one's runs from another's. Whatever carries a settled run's mark is killed.

Only processes of our own effective uid are ever signalled, never this process, and each
through a pidfd opened before its environment is read: a pid reused in between is not hit.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import select
import signal
import time
from collections.abc import Callable, Collection, Iterator

RUN_VARIABLE = "EASYFLOW_RUN_ID"
TOKEN_VARIABLE = "EASYFLOW_DAEMON_TOKEN"
# A fork bomb outruns one pass: each pass kills what the last one missed.
PASSES = 20
ENVIRON_LIMIT = 1 << 20
# A process killed takes a moment to exit (one stuck in the kernel longer: not waited for).
DYING_S = 1.0
RUN_BYTES, TOKEN_BYTES = RUN_VARIABLE.encode(), TOKEN_VARIABLE.encode()


def new_token() -> str:
    return secrets.token_hex(16)


def marker_env(run_id: int | None, token: str | None) -> dict[str, str]:
    """The variables a run's steps get: its id, and the token of whoever executes it."""
    env = {} if run_id is None else {RUN_VARIABLE: str(run_id)}
    if token:
        env[TOKEN_VARIABLE] = token
    return env


def kill_marked(run_ids: Collection[int], tokens: Collection[str]) -> int:
    """SIGKILL every process marked with one of `run_ids` and one of `tokens`, pass after
    pass until none is left; how many were killed."""
    wanted = {str(run_id).encode() for run_id in run_ids}
    needles = {token.encode() for token in tokens if token}
    if not wanted or not needles:
        return 0
    return _kill_all(lambda pid: _mark_matches(pid, wanted, needles))


def kill_session(session: int) -> int:
    """SIGKILL every process in this session, pass after pass; how many were killed.

    A dead worker's session (pools.py): what it spawned stays in it, also a step caught
    between its spawn and its exec, whose environment is still the worker's, without the
    run's mark. The caller holds the dead leader unreaped, so the session's id names no
    other."""
    return _kill_all(lambda pid: pid != session and session_of(pid) == session)


def _kill_all(matches: Callable[[int], bool]) -> int:
    killed = 0
    for _ in range(PASSES):
        pidfds = list(_matching(matches))
        try:
            hits = sum(_kill(pidfd) for pidfd in pidfds)
            _wait_gone(pidfds)  # or the next pass would find them again, still dying
        finally:
            for pidfd in pidfds:
                os.close(pidfd)
        killed += hits
        if not hits:
            break
    return killed


def _kill(pidfd: int) -> bool:
    try:
        signal.pidfd_send_signal(pidfd, signal.SIGKILL)
        return True
    except ProcessLookupError:
        return False


def _wait_gone(pidfds: list[int]) -> None:
    """Until every one has exited (a pidfd reads as ready then), for at most DYING_S."""
    poller = select.poll()
    for pidfd in pidfds:
        poller.register(pidfd, select.POLLIN)
    left, give_up = len(pidfds), time.monotonic() + DYING_S
    while left and (remaining := give_up - time.monotonic()) > 0:
        for pidfd, _ in poller.poll(remaining * 1000):
            poller.unregister(pidfd)
            left -= 1


def marked_pids(run_ids: Collection[int], tokens: Collection[str]) -> set[int]:
    """The live processes that carry one of these marks (for tests and reports)."""
    wanted = {str(run_id).encode() for run_id in run_ids}
    needles = {token.encode() for token in tokens if token}
    found: set[int] = set()
    for pid in _our_pids():
        if _mark_matches(pid, wanted, needles):
            found.add(pid)
    return found


def _matching(matches: Callable[[int], bool]) -> Iterator[int]:
    """Pidfds of our processes that match, each opened before it is looked at (the caller
    closes them)."""
    for pid in _our_pids():
        try:
            pidfd = os.pidfd_open(pid)
        except OSError:
            continue
        if matches(pid):
            yield pidfd
        else:
            os.close(pidfd)


def session_of(pid: int) -> int | None:
    """The session a live process is in (field 6 of /proc/PID/stat); None once it has exited
    (a zombie waiting for its new parent to reap it is past killing)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as stat:
            fields = stat.read().rsplit(b")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return None if fields[0] in (b"Z", b"X") else int(fields[3])


def _our_pids() -> Iterator[int]:
    me, uid = os.getpid(), os.geteuid()
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit() or int(entry.name) == me:
            continue
        with contextlib.suppress(OSError):
            if entry.stat().st_uid == uid:
                yield int(entry.name)


def _mark_matches(pid: int, wanted: set[bytes], needles: set[bytes]) -> bool:
    environ = _environ(pid)
    if not environ or not any(needle in environ for needle in needles):
        return False  # the common case, decided without splitting the environment
    marks = {}
    for item in environ.split(b"\0"):
        name, _, value = item.partition(b"=")
        marks[name] = value
    return marks.get(TOKEN_BYTES) in needles and marks.get(RUN_BYTES) in wanted


def _environ(pid: int) -> bytes:
    try:
        fd = os.open(f"/proc/{pid}/environ", os.O_RDONLY)
    except OSError:
        return b""
    try:
        chunks = []
        size = 0
        while size < ENVIRON_LIMIT and (chunk := os.read(fd, 65536)):
            chunks.append(chunk)
            size += len(chunk)
        return b"".join(chunks)
    except OSError:
        return b""
    finally:
        os.close(fd)
