"""A run's log on the terminal: control characters made visible unless asked for raw bytes.

A step's output is whatever its program wrote, so it may hold escape sequences that recolour,
retitle or rewrite the terminal of whoever reads it (or hide lines with carriage returns).
"""

from __future__ import annotations

import codecs
import errno
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from easyflow_cli.core.errors import EasyflowError
from easyflow_cli.core.trust import user_name

CHUNK_BYTES = 65536
# C0 controls but tab and newline, DEL, and the C1 controls (U+0080-U+009F) some terminals obey.
CONTROLS = [chr(code) for code in [*range(0x00, 0x09), *range(0x0B, 0x20), *range(0x7F, 0xA0)]]
ANY_CONTROL = re.compile(f"[{re.escape(''.join(CONTROLS))}]")


class UnreadableLog(EasyflowError):
    """The log exists but this user may not read it (or it is not a plain file)."""


def copy_log(path: Path, out: BinaryIO, *, raw: bool, lines: int | None = None) -> None:
    """Write the log at `path` (its last `lines` lines, if given) to `out`, escaped unless
    `raw`."""
    with open(open_log(path), "rb") as log:
        if lines is not None:
            log.seek(tail_offset(log.fileno(), lines))
        write_chunks(iter(lambda: log.read(CHUNK_BYTES), b""), out, raw=raw)


def write_chunks(chunks: Iterator[bytes], out: BinaryIO, *, raw: bool) -> None:
    """Each chunk of a log to `out` as it comes, escaped unless `raw`."""
    for piece in (chunks if raw else escaped(chunks)):
        out.write(piece)
        out.flush()
    out.flush()


def tail_offset(fd: int, lines: int) -> int:
    """Where the last `lines` lines of the file begin, read backwards from its end (a log may be
    large, and its end is what is asked for)."""
    end = os.fstat(fd).st_size
    if lines <= 0:
        return end
    seen, stop = 0, end
    while stop > 0:
        start = max(0, stop - CHUNK_BYTES)
        block = os.pread(fd, stop - start, start)
        if stop == end and block.endswith(b"\n"):
            block = block[:-1]  # the last line's own end
        cut = len(block)
        while (cut := block.rfind(b"\n", 0, cut)) != -1:
            seen += 1
            if seen == lines:
                return start + cut + 1
        stop = start
    return 0


def escaped(chunks: Iterator[bytes]) -> Iterator[bytes]:
    """The text of `chunks` (UTF-8) with control characters as `\\x1b`, newlines and tabs kept;
    bytes that are not UTF-8 shown as `\\xff`. A character split between chunks stays whole."""
    decoder = codecs.getincrementaldecoder("utf-8")(errors="backslashreplace")
    for chunk in chunks:
        yield escape_controls(decoder.decode(chunk)).encode()
    yield escape_controls(decoder.decode(b"", final=True)).encode()


def escape_controls(text: str) -> str:
    # One str.replace per control character present, not a Python call per match: a log full
    # of colour codes holds one every few characters.
    if ANY_CONTROL.search(text) is None:
        return text
    for char in CONTROLS:
        if char in text:
            text = text.replace(char, f"\\x{ord(char):02x}")
    return text


def open_log(path: Path) -> int:
    """The log's descriptor, read-only, never through a link; UnreadableLog in our words."""
    try:
        return os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except PermissionError:
        raise UnreadableLog(f"cannot read {path}: it belongs to {_owner(path)} and this is "
                            f"{user_name(os.geteuid())}; read it as {_owner(path)}") from None
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise UnreadableLog(f"{path} is a symbolic link; easyflow does not follow links in "
                                "its state directory") from None
        raise UnreadableLog(f"cannot read {path}: {exc.strerror}") from None


def _owner(path: Path) -> str:
    try:
        return user_name(os.lstat(path).st_uid)
    except OSError:
        return "another user"
