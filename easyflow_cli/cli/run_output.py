"""Where a run's output is read from while it runs: the log file its executor writes on this
machine, or on a cluster the chunks its worker writes to the database."""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from easyflow_cli.core.model import Run
    from easyflow_cli.storage.backend import Backend, Cluster


class RunOutput(Protocol):
    def new_output(self, run: Run) -> bytes:
        """What the run wrote since the last call (b"" when nothing)."""
        ...


class FileOutput:
    """The run's log file, read on from where the last read stopped."""

    def __init__(self) -> None:
        self.offset = 0

    def new_output(self, run: Run) -> bytes:
        if not run.log_path:
            return b""
        try:
            with open(run.log_path, "rb") as log:
                log.seek(self.offset)
                data = log.read()
        except FileNotFoundError:
            return b""
        self.offset += len(data)
        return data


class ChunkOutput:
    """The run's log chunks in the cluster's database, from the one after the last read."""

    def __init__(self, cluster: Cluster) -> None:
        self.cluster = cluster
        self.seq = -1

    def new_output(self, run: Run) -> bytes:
        chunks = self.cluster.log_chunks(run.id, after=self.seq)
        if not chunks:
            return b""
        self.seq = chunks[-1][0]
        return b"".join(data for _, data in chunks)


def output_of(store: Backend) -> RunOutput:
    return FileOutput() if store.cluster is None else ChunkOutput(store.cluster)


def tail_of(data: bytes, lines: int) -> bytes:
    """The last `lines` lines of `data` (as `log_view.tail_offset` counts them in a file)."""
    if lines <= 0:
        return b""
    body = data[:-1] if data.endswith(b"\n") else data
    cut = len(body)
    for _ in range(lines):
        cut = body.rfind(b"\n", 0, cut)
        if cut == -1:
            return data
    return data[cut + 1:]
