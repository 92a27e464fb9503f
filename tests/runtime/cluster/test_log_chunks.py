"""A run's log as it leaves a cluster worker: gathered into numbered chunks, sent by size, by
age and at the end; a failed send is the OSError CappedLog notes as an incomplete log."""

import errno

import pytest

from easyflow_cli.runtime.capped_log import CappedLog
from easyflow_cli.runtime.cluster.log_chunks import CHUNK_BYTES, FLUSH_AFTER_S, ChunkedLog


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def sent():
    return []


def test_writes_gather_until_a_chunk_is_full_or_old_and_the_rest_goes_at_close(sent):
    clock = Clock()
    log = ChunkedLog(lambda seq, data: sent.append((seq, data)), clock)
    log.write(b"a" * (CHUNK_BYTES - 1))
    log.flush()
    assert sent == []
    log.write(b"b")
    assert sent == [(0, b"a" * (CHUNK_BYTES - 1) + b"b")]
    log.write(b"late")
    clock.now += FLUSH_AFTER_S
    log.flush()
    log.write(b"end")
    log.close()
    assert sent[1:] == [(1, b"late"), (2, b"end")]


def test_a_look_from_a_signal_handler_in_the_middle_of_a_write_sends_nothing(sent):
    clock = Clock()
    log = ChunkedLog(lambda seq, data: sent.append((seq, data)), clock)
    log.write(b"x")
    clock.now += FLUSH_AFTER_S
    log.busy = True  # as while a write or a send is under way
    log.flush()
    assert sent == []


def test_a_log_the_database_refuses_leaves_the_run_going_with_the_reason(sent):
    def refuse(seq: int, data: bytes) -> None:
        raise OSError(errno.EIO, "cannot write the log to the database: gone")

    capped = CappedLog(ChunkedLog(refuse), 1 << 20)  # type: ignore[arg-type]
    capped.write(b"x" * CHUNK_BYTES)
    capped.close()
    assert capped.failure == "cannot write the log to the database: gone"


def test_a_last_chunk_the_database_refuses_is_kept_as_the_reason():
    def refuse(seq: int, data: bytes) -> None:
        raise OSError(errno.EIO, "cannot write the log to the database: gone")

    log = ChunkedLog(refuse)
    log.write(b"end")
    log.close()
    assert log.failure == "cannot write the log to the database: gone"
