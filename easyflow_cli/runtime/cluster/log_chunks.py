"""A run's log sent to the database in numbered chunks, so that `logs` reads it from any machine.

It is the stream `capped_log.CappedLog` writes to, as the local worker's log file is: the cap,
the kept tail and the masking of secrets happen there, before any byte leaves the worker. A
chunk leaves when CHUNK_BYTES have gathered, when the oldest unsent byte is FLUSH_AFTER_S old
(looked at on every write and every cancellation check, twice a second), and at the end.

The look from a cancellation check may come from a signal handler (a `call` step's timer, see
calls.py) in the middle of this object's own work: it then does nothing, and the next one sends.
"""

from __future__ import annotations

import io
import time
from collections.abc import Callable

CHUNK_BYTES = 64 * 1024
FLUSH_AFTER_S = 0.5

# Sends one chunk: its number (from 0) and its bytes; raises OSError when it cannot.
Sender = Callable[[int, bytes], None]


class ChunkedLog(io.RawIOBase):
    """Gathers writes and sends them as chunks through `send`."""

    def __init__(self, send: Sender, clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__()
        self.send = send
        self.clock = clock
        self.pending: list[bytes] = []
        self.pending_bytes = 0
        self.pending_since = 0.0
        self.seq = 0
        self.busy = False  # inside a write or a send: a look from a signal handler waits
        self.failure: str | None = None  # why the last chunk could not be sent at close

    def writable(self) -> bool:
        return True

    def write(self, data: object) -> int:
        chunk = bytes(data)  # type: ignore[call-overload]  # CappedLog writes bytes
        if not chunk:
            return 0
        self.busy = True
        try:
            if not self.pending:
                self.pending_since = self.clock()
            self.pending.append(chunk)
            self.pending_bytes += len(chunk)
            if self.pending_bytes >= CHUNK_BYTES:
                self._send()
        finally:
            self.busy = False
        return len(chunk)

    def flush(self) -> None:
        """What is pending, once it is FLUSH_AFTER_S old."""
        if self.busy or not self.pending:
            return
        if self.clock() - self.pending_since >= FLUSH_AFTER_S:
            self._send_now()

    def close(self) -> None:
        """The rest sent; a failure then is kept in `failure` (the run's outcome says it), as
        CappedLog keeps one of a write."""
        if not self.closed and not self.busy:
            try:
                self._send_now()
            except OSError as exc:
                self.failure = exc.strerror or str(exc)
        super().close()

    def _send_now(self) -> None:
        self.busy = True
        try:
            self._send()
        finally:
            self.busy = False

    def _send(self) -> None:
        if not self.pending:
            return
        data = b"".join(self.pending)
        self.pending.clear()
        self.pending_bytes = 0
        self.send(self.seq, data)
        self.seq += 1
