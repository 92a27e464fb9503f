"""Which runs a worker last began a step of, in a small file of its own.

A step begins without a round trip to the daemon: a call step runs inside its worker, a command
step is spawned at once, and its run's start reaches the database with the worker's next
reports, a few milliseconds later. A worker or a daemon killed in between would leave the run
looking as if it never started, and it would run again. So before a step's program or function
runs, the worker writes the run's id into its slot, and whoever settles a dead worker's runs
counts the runs in its slot as started. The slot is a shared memory mapping of the file: a
write is a store into the page cache, with no system call and no round trip to the daemon, and
it outlives a kill -9 of the worker.

The slot keeps the last RING runs begun, not only the last one: the starts of several short
runs may be on their way (held back in the worker, in its pipe, or in a batch the daemon has
not committed) when a worker or the daemon dies. A worker holds at most a few dozen runs
(pools.py), and is handed more only once the daemon has taken its earlier reports.
"""

from __future__ import annotations

import contextlib
import mmap
import os
from pathlib import Path

from easyflow_cli.core.trust import UntrustedPath, create_or_reopen, open_private

SLOTS_VARIABLE = "EASYFLOW_SLOTS"
WIDTH = 20
ENTRY = WIDTH + 1
RING = 256
SIZE = ENTRY * RING


def slot_path(directory: Path, token: str, pid: int) -> Path:
    return directory / f"{token}.{pid}"


class StartSlot:
    """The worker's own slot, created when it starts. Never removed by the worker, even when it
    exits cleanly: the starts it sent last may still be in its pipe, or in a batch the daemon
    has not committed, when the daemon is killed; only whoever committed them (the daemon, once
    it took the worker's exit) or counted them (recovery) removes the slot."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.fd = create_or_reopen(path, os.O_RDWR)
        os.ftruncate(self.fd, SIZE)
        self.map = mmap.mmap(self.fd, SIZE)
        self.map[:] = bytes(SIZE)
        self.next = 0
        self.last: int | None = None

    def begin(self, run_id: int) -> None:
        if run_id == self.last:  # its next step
            return
        at = self.next * ENTRY
        self.map[at:at + ENTRY] = f"{run_id:>{WIDTH}}\n".encode()
        self.next = (self.next + 1) % RING
        self.last = run_id

    def close(self) -> None:
        self.map.close()
        os.close(self.fd)


def read_slot(path: Path) -> set[int]:
    """The runs a (dead) worker began steps of, as far as its slot remembers."""
    try:
        fd = open_private(path, os.O_RDONLY)
    except (OSError, UntrustedPath):
        return set()
    try:
        text = os.read(fd, SIZE).decode(errors="replace")
    finally:
        os.close(fd)
    entries = (entry.strip(" \0") for entry in text.split("\n"))
    return {int(entry) for entry in entries if entry.isascii() and entry.isdigit()}


def slots_in(directory: Path) -> list[Path]:
    try:
        return [Path(entry.path) for entry in os.scandir(directory)
                if entry.is_file(follow_symlinks=False)]
    except FileNotFoundError:
        return []


def discard(paths: list[Path]) -> None:
    for path in paths:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
