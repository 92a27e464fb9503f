"""Which run a worker last began a `call` step of, in a small file of its own.

A call step runs inside its worker, with no process group to record and hold: its run's start
reaches the database with the worker's next reports, a few milliseconds later. A worker or a
daemon killed in between would leave the run looking as if it never started, and it would run
again. So before a call step's function runs, the worker writes the run's id into its slot, and
whoever settles a dead worker's runs counts the run in its slot as started. The slot is a shared
memory mapping of the file: a write is a store into the page cache, with no system call and no
round trip to the daemon, and it outlives a kill -9 of the worker.
"""

from __future__ import annotations

import contextlib
import mmap
import os
from pathlib import Path

from easyflow_cli.core.trust import UntrustedPath, create_or_reopen, open_private

SLOTS_VARIABLE = "EASYFLOW_SLOTS"
WIDTH = 20
SIZE = WIDTH + 1


def slot_path(directory: Path, token: str, pid: int) -> Path:
    return directory / f"{token}.{pid}"


class StartSlot:
    """The worker's own slot, created when it starts and removed when it exits cleanly."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.fd = create_or_reopen(path, os.O_RDWR)
        os.ftruncate(self.fd, SIZE)
        self.map = mmap.mmap(self.fd, SIZE)

    def begin(self, run_id: int) -> None:
        self.map[:SIZE] = f"{run_id:>{WIDTH}}\n".encode()

    def close(self) -> None:
        self.map.close()
        os.close(self.fd)
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()


def read_slot(path: Path) -> int | None:
    """The run a (dead) worker last began a call step of, if its slot says."""
    try:
        fd = open_private(path, os.O_RDONLY)
    except (OSError, UntrustedPath):
        return None
    try:
        text = os.read(fd, SIZE).decode(errors="replace").strip(" \n\0")
    finally:
        os.close(fd)
    return int(text) if text.isdigit() else None


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
