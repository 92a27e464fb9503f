"""`easyflow logs -f`: a run's log as it grows, until the run ends.

Whoever executes the run (a daemon's worker, or a `run --now` in another terminal) writes the
file and records the run's state; this reads both, so it follows a run started anywhere, and
also one still queued (its log appears when it starts). The run's state is read before the
file: once it reads ended, the read after it has the whole log, as the executor closes the log
before it records the end. On a cluster the log is the chunks the run's worker writes to the
database (`ChunkFollower`).
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path

from easyflow_cli.cli.log_view import CHUNK_BYTES, open_log, tail_offset
from easyflow_cli.cli.run_output import ChunkOutput, tail_of
from easyflow_cli.core.model import Run
from easyflow_cli.storage.backend import Backend, Cluster

POLL_SECONDS = 0.1


def log_follower(store: Backend, run_id: int, lines: int | None = None
                 ) -> LogFollower | ChunkFollower:
    """The follower of the run's log file, or on a cluster of its chunks in the database."""
    if store.cluster is None:
        return LogFollower(store, run_id, lines)
    return ChunkFollower(store, store.cluster, run_id, lines)


class LogFollower:
    """Reads a run's log as it grows until the run ends; `run` is the run as last read."""

    def __init__(self, store: Backend, run_id: int, lines: int | None = None) -> None:
        self.store = store
        self.run: Run = store.queue.get(run_id)
        self.lines = lines
        self.fd: int | None = None

    def chunks(self) -> Iterator[bytes]:
        """The log's bytes as they come (from its last `lines` lines, if given)."""
        try:
            while True:
                self.run = self.store.queue.get(self.run.id)
                if self.fd is None:
                    self.fd = self._open()
                if self.fd is not None:
                    yield from _available(self.fd)
                if self.run.state.finished:
                    return
                time.sleep(POLL_SECONDS)
        finally:
            if self.fd is not None:
                os.close(self.fd)

    def _open(self) -> int | None:
        """The log, once it exists (a run is given its path when it starts)."""
        path = self.run.log_path
        if not path or not os.path.lexists(path):
            return None
        fd = open_log(Path(path))
        if self.lines is not None:
            os.lseek(fd, tail_offset(fd, self.lines), os.SEEK_SET)
        return fd


class ChunkFollower:
    """A run's log chunks as its worker writes them to the cluster's database, until the run
    ends; `run` is the run as last read. As with a file, the run is read before its chunks:
    a worker writes its last chunk before it records the end."""

    def __init__(self, store: Backend, cluster: Cluster, run_id: int,
                 lines: int | None = None) -> None:
        self.store = store
        self.run: Run = store.queue.get(run_id)
        self.output = ChunkOutput(cluster)
        self.lines = lines

    def chunks(self) -> Iterator[bytes]:
        while True:
            self.run = self.store.queue.get(self.run.id)
            data = self.output.new_output(self.run)
            if data and self.lines is not None:
                data, self.lines = tail_of(data, self.lines), None
            if data:
                yield data
            if self.run.state.finished:
                return
            time.sleep(POLL_SECONDS)


def _available(fd: int) -> Iterator[bytes]:
    while data := os.read(fd, CHUNK_BYTES):
        yield data
