"""A run's log file as its steps write it: capped, with a marker, optionally echoed live."""

from __future__ import annotations

from typing import BinaryIO


class CappedLog:
    """Writes step output to the run's log file, up to a limit, then a marker and nothing more.

    A log that cannot be written (disk full, read-only) never stops the run: its output is
    then dropped and `failure` says why.
    """

    def __init__(self, stream: BinaryIO, limit: int, echo: BinaryIO | None = None) -> None:
        self.stream = stream
        self.limit = limit
        self.echo = echo
        self.written = 0
        self.dropped = 0
        self.at_line_start = True
        self.failure: str | None = None

    def _put(self, data: bytes) -> None:
        if self.failure is not None:
            return
        try:
            self.stream.write(data)
            self.stream.flush()
        except OSError as exc:
            self.failure = exc.strerror or str(exc)

    def write(self, data: bytes) -> None:
        if self.echo is not None:
            self.echo.write(data)
            self.echo.flush()
        room = self.limit - self.written
        if room > 0 and data:
            kept = data[:room]
            self._put(kept)
            self.written += len(kept)
            self.at_line_start = kept.endswith(b"\n")
        self.dropped += max(0, len(data) - max(room, 0))

    def note(self, text: str) -> None:
        line = f"[easyflow] {text}\n".encode()
        self._put(line if self.at_line_start else b"\n" + line)
        self.at_line_start = True
        if self.echo is not None:
            self.echo.write(line)
            self.echo.flush()

    def close_step(self) -> None:
        if self.dropped:
            self.note(f"output truncated: log limit of {self.limit} bytes reached, "
                      f"{self.dropped} bytes dropped")
            self.dropped = 0
