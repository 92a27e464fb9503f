"""A run's log file as its steps write it: capped, keeping its head and its tail, optionally
echoed live, and with the run's secret values masked.

The head goes to the file as it comes. Once it fills its share of the cap, the file gets a
note saying so, and what follows is kept in memory as a bounded tail (the last bytes only), so
a step that writes gigabytes costs the executing process no more than the tail's size. When the
run ends, the file gets a marker saying how much of the middle was dropped, then the tail: the
end of the output, where the error usually is.

A step's header (its command line) is held back until something follows it: a run that prints
nothing writes nothing, and its log file is never created (worker.py opens it at the first
write).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from typing import BinaryIO

# The tail held in memory: at most half the cap, and never more than this.
TAIL_MAX_BYTES = 1024 * 1024
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


class Tail:
    """The last `size` bytes of what was added to it, and how many it let go."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.chunks: deque[bytes] = deque()
        self.held = 0
        self.dropped = 0
        self.at_line_start = True  # what it holds begins a line: what it let go ended one

    def add(self, data: bytes) -> None:
        if not self.size:
            self._let_go(data)
            return
        if len(data) > self.size:
            self._let_go(data[:-self.size])
            data = data[-self.size:]
        self.chunks.append(data)
        self.held += len(data)
        while self.held - len(self.chunks[0]) >= self.size:
            self._drop(len(self.chunks[0]))
        if self.held > self.size:
            self._drop(self.held - self.size)

    def _drop(self, count: int) -> None:
        first = self.chunks.popleft()
        if count < len(first):
            self.chunks.appendleft(first[count:])
        self.held -= count
        self._let_go(first[:count])

    def _let_go(self, data: bytes) -> None:
        self.dropped += len(data)
        self.at_line_start = data.endswith(b"\n")

    def take(self) -> tuple[bytes, int]:
        """What it holds, from its first whole line when it has one, and how many bytes were
        dropped before that; it is empty afterwards."""
        data = b"".join(self.chunks)
        dropped = self.dropped
        if not self.at_line_start:
            newline = data.find(b"\n")
            if 0 <= newline < len(data) - 1:
                dropped += newline + 1
                data = data[newline + 1:]
        self.chunks.clear()
        self.held = self.dropped = 0
        self.at_line_start = True
        return data, dropped


class CappedLog:
    """Writes step output to the run's log file: its head up to its share of `limit`, then
    (at `close`) a marker and its tail. Notes of ours go where the output is at the time.

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
        self.tail = Tail(min(limit // 2, TAIL_MAX_BYTES))
        self.head_room = limit - self.tail.size
        self.overflowed = False
        self.at_line_start = True
        self.failure: str | None = None
        self.headers: list[bytes] = []  # held back until something follows them
        self.wrote = False

    def write(self, data: bytes) -> None:
        self._emit(self.mask.feed(data) if self.mask else data)

    def _emit(self, data: bytes) -> None:
        if not data:
            return
        if self.echo is not None:
            self.echo.write(data)
            self.echo.flush()
        if not self.overflowed:
            kept = data[:self.head_room]
            if kept:
                self._put(kept)
                self.head_room -= len(kept)
                self.at_line_start = kept.endswith(b"\n")
            if len(kept) == len(data):
                return
            self._overflow()
            data = data[len(kept):]
        self.tail.add(data)
        self.at_line_start = data.endswith(b"\n")

    def note(self, text: str) -> None:
        self._note(text, held=False)

    def header(self, text: str) -> None:
        """A note that introduces what follows (a step's command line): echoed at once, but
        written only with the first thing after it, or at `close` if the run wrote anything."""
        self._note(text, held=True)

    def _note(self, text: str, held: bool) -> None:
        self._emit(self.mask.flush())
        line = f"[easyflow] {self.mask.hide(text)}\n".encode()
        entry = line if self.at_line_start else b"\n" + line
        if self.overflowed:
            self.tail.add(entry)
        elif held:
            self.headers.append(entry)
        else:
            self._put(entry)
        self.at_line_start = True
        if self.echo is not None:
            self.echo.write(line)
            self.echo.flush()

    def close_step(self) -> None:
        """A step's output ended: what the mask held back (no secret can continue it now)."""
        self._emit(self.mask.flush())

    def close(self) -> None:
        """The run ended: the headers still held if anything was written, the marker and the
        tail if the head filled."""
        self.close_step()
        if not self.wrote:
            self.headers.clear()
        self._put(b"")  # the headers held; or, nothing written, what is at the stream's path
        if not self.overflowed:
            return
        data, dropped = self.tail.take()
        if dropped:
            self._put(f"[easyflow] [… {dropped:,} bytes dropped …]\n".encode())
        self._put(data)

    def _overflow(self) -> None:
        self.overflowed = True
        notice = (f"[easyflow] log limit of {self.limit:,} bytes reached: the output's last "
                  f"{self.tail.size:,} bytes follow when the run ends\n").encode()
        self._put(notice if self.at_line_start else b"\n" + notice)
        self.at_line_start = True

    def _put(self, data: bytes) -> None:
        if self.headers:
            data = b"".join(self.headers) + data
            self.headers.clear()
        self.wrote = True
        if self.failure is not None:
            return
        try:
            self.stream.write(data)
            self.stream.flush()
        except OSError as exc:
            self.failure = exc.strerror or str(exc)
