"""What a step leaves behind outside its process group: stopped when the step ends.

A command step's group is killed when it ends, but a process that called `setsid` (or a
double fork that did) is in a group of its own. A call step's processes are the executing
process's own children. Either way they end up children of the executing process, a subreaper:
whatever its new children are when a step ends is killed and reaped, round after round, as
each round's orphans come back to it.
"""

from __future__ import annotations

import contextlib
import os
import signal
from collections.abc import Iterator
from pathlib import Path

# Each round's orphans are the next round's children; a deeper tree than this is a fork bomb.
ROUNDS = 20


@contextlib.contextmanager
def new_children_stopped() -> Iterator[None]:
    """Children this process gains in the block are killed and reaped when it ends."""
    before = children()
    try:
        yield
    finally:
        for _ in range(ROUNDS):
            left = children() - before
            if not left:
                break
            _stop(left)


def children() -> set[int]:
    """This process's children, those of every thread (empty where the kernel does not say)."""
    try:  # one system call answers the common case, no child at all; WNOWAIT reaps nothing
        os.waitid(os.P_ALL, 0, os.WEXITED | os.WNOHANG | os.WNOWAIT)
    except ChildProcessError:
        return set()
    found: set[int] = set()
    for task in Path("/proc/self/task").iterdir():
        with contextlib.suppress(OSError):
            found.update(int(pid) for pid in (task / "children").read_text().split())
    return found


def _stop(pids: set[int]) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    for pid in pids:
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, 0)
