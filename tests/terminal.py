"""Run a command in a pseudo-terminal and see the screen it leaves, as a terminal shows it.

`pyte` is a terminal emulator: fed the bytes a program wrote to its terminal (cursor moves,
line erases and all), it gives back the final screen, which is what a user would read.
"""

from __future__ import annotations

import fcntl
import os
import pty
import select
import signal
import struct
import termios
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import pyte


@dataclass(frozen=True)
class TerminalSession:
    exit_code: int
    output: bytes  # every byte written to the terminal
    screen: list[str]  # the final screen, one string per non-empty row, trailing blanks cut

    @property
    def text(self) -> str:
        return "\n".join(self.screen)


def run_in_terminal(argv: Sequence[str], env: Mapping[str, str], *, columns: int = 120,
                    rows: int = 40, timeout: float = 60.0) -> TerminalSession:
    """Run `argv` with stdin, stdout and stderr on one new terminal of the given size."""
    pid, fd = pty.fork()
    if pid == 0:  # the child: its controlling terminal is the pty
        try:
            os.execvpe(argv[0], list(argv), dict(env))
        finally:
            os._exit(127)
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, columns, 0, 0))
    try:
        output = _read_until_closed(fd, pid, time.monotonic() + timeout)
    finally:
        os.close(fd)
    _, status = os.waitpid(pid, 0)
    screen = pyte.Screen(columns, rows)
    pyte.ByteStream(screen).feed(output)
    lines = [line.rstrip() for line in screen.display]
    while lines and not lines[-1]:
        lines.pop()
    return TerminalSession(os.waitstatus_to_exitcode(status), output, lines)


def _read_until_closed(fd: int, pid: int, deadline: float) -> bytes:
    chunks = []
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            os.kill(pid, signal.SIGKILL)
            raise AssertionError(f"the command did not end in time; it wrote {b''.join(chunks)!r}")
        ready, _, _ = select.select([fd], [], [], left)
        if not ready:
            continue
        try:
            chunk = os.read(fd, 65536)
        except OSError:  # EIO: the child closed its end of the terminal
            return b"".join(chunks)
        if not chunk:
            return b"".join(chunks)
        chunks.append(chunk)
