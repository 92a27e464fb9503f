"""A run's log file as its steps write it: capped, with a marker, optionally echoed live, and
with the run's secret values masked."""

from __future__ import annotations

from collections.abc import Iterable
from typing import BinaryIO

MASK = b"***"
# A shorter value would mask every occurrence of common text ("1", "yes") and tell nothing.
MASKED_MIN_LENGTH = 4


class SecretMask:
    """Replaces secret values in a stream of chunks with `***`, also a value split across
    chunks: the end of a chunk that could begin a secret is held back until the next one."""

    def __init__(self, values: Iterable[str]) -> None:
        encoded = {v.encode() for v in values if len(v) >= MASKED_MIN_LENGTH}
        self.secrets = sorted(encoded, key=len, reverse=True)  # the longest match wins
        self.held = b""

    def __bool__(self) -> bool:
        return bool(self.secrets)

    def feed(self, data: bytes) -> bytes:
        """What may be written of the stream so far (masked); a possible secret's start waits."""
        text = self._masked(self.held + data)
        keep = self._open_prefix(text)
        self.held = text[len(text) - keep:] if keep else b""
        return text[:len(text) - keep]

    def flush(self) -> bytes:
        """The held-back end, at the end of a step's output: no secret can continue it now."""
        held, self.held = self.held, b""
        return held

    def hide(self, text: str) -> str:
        """Text written whole (a note, a run's error): every secret in it masked."""
        return self._masked(text.encode()).decode() if self.secrets else text

    def _masked(self, data: bytes) -> bytes:
        for secret in self.secrets:
            if secret in data:
                data = data.replace(secret, MASK)
        return data

    def _open_prefix(self, data: bytes) -> int:
        """The length of the longest end of `data` that a secret begins with (not all of it)."""
        longest = 0
        for secret in self.secrets:
            for size in range(min(len(secret) - 1, len(data)), longest, -1):
                if data.endswith(secret[:size]):
                    longest = size
                    break
        return longest


class CappedLog:
    """Writes step output to the run's log file, up to a limit, then a marker and nothing more.

    A log that cannot be written (disk full, read-only) never stops the run: its output is
    then dropped and `failure` says why. Secret values are masked before anything is written
    or echoed.
    """

    def __init__(self, stream: BinaryIO, limit: int, echo: BinaryIO | None = None,
                 secrets: Iterable[str] = ()) -> None:
        self.stream = stream
        self.limit = limit
        self.echo = echo
        self.mask = SecretMask(secrets)
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
        self._emit(self.mask.feed(data) if self.mask else data)

    def _emit(self, data: bytes) -> None:
        if not data:
            return
        if self.echo is not None:
            self.echo.write(data)
            self.echo.flush()
        room = self.limit - self.written
        if room > 0:
            kept = data[:room]
            self._put(kept)
            self.written += len(kept)
            self.at_line_start = kept.endswith(b"\n")
        self.dropped += max(0, len(data) - max(room, 0))

    def note(self, text: str) -> None:
        self._emit(self.mask.flush())
        line = f"[easyflow] {self.mask.hide(text)}\n".encode()
        self._put(line if self.at_line_start else b"\n" + line)
        self.at_line_start = True
        if self.echo is not None:
            self.echo.write(line)
            self.echo.flush()

    def close_step(self) -> None:
        self._emit(self.mask.flush())
        if self.dropped:
            self.note(f"output truncated: log limit of {self.limit} bytes reached, "
                      f"{self.dropped} bytes dropped")
            self.dropped = 0
