"""Follow a run the daemon executes: a live status line, its output as it is written.

On a terminal the status line stays at the bottom and the run's output scrolls above it, whole
lines at a time, printed through the console that draws the status (as Rich's own redirection
of stdout does): a line written past Rich's back would be glued to the spinner it overwrites.
Output that goes anywhere else (a pipe, a file) is copied byte for byte.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, BinaryIO

from easyflow_cli.cli.output import err_console
from easyflow_cli.cli.waiting import starts
from easyflow_cli.core.model import Run, RunState
from easyflow_cli.core.timeutil import utcnow
from easyflow_cli.storage.store import Store

if TYPE_CHECKING:
    from rich.console import Console

POLL_SECONDS = 0.1

Writer = Callable[[bytes], None]


def follow_run(store: Store, run_id: int, echo: BinaryIO) -> Run:
    """Poll the run and copy its log until it ends; returns the run as it ended."""
    offset = 0
    started = time.monotonic()
    with err_console.status(f"run {run_id} queued") as status:
        write, finish = _writer(echo, status.console)
        try:
            while True:
                run = store.queue.get(run_id)
                offset = _copy_new_output(run.log_path, offset, write)
                if run.state.finished:
                    _copy_new_output(run.log_path, offset, write)
                    return run
                status.update(_describe(run, time.monotonic() - started))
                time.sleep(POLL_SECONDS)
        finally:
            finish()


def _writer(echo: BinaryIO, console: Console) -> tuple[Writer, Callable[[], None]]:
    """Where output goes: above the status line when both share a terminal, else raw."""
    if console.is_terminal and _is_terminal(echo):
        above = LinesAbove(console)
        return above.write, above.close

    def copy(data: bytes) -> None:
        echo.write(data)
        echo.flush()

    return copy, echo.flush


def _is_terminal(stream: BinaryIO) -> bool:
    try:
        return os.isatty(stream.fileno())
    except (AttributeError, OSError, ValueError):
        return False


class LinesAbove:
    """Output printed above a live display: whole lines, since the display's next refresh
    would wipe a partial one; the rest is kept until its newline comes (or `close`)."""

    def __init__(self, console: Console) -> None:
        self._console = console
        self._pending = b""

    def write(self, data: bytes) -> None:
        *lines, self._pending = (self._pending + data).split(b"\n")
        for line in lines:
            self._print(line)

    def close(self) -> None:
        if self._pending:
            self._print(self._pending)
            self._pending = b""

    def _print(self, line: bytes) -> None:
        from rich.text import Text

        text = Text.from_ansi(line.decode(errors="replace").rstrip("\r"))
        self._console.print(text, soft_wrap=True, highlight=False)


def _describe(run: Run, waited: float) -> str:
    where = f"{run.mode.value} pool" if run.pool else f"{run.mode.value} queue"
    if run.state is RunState.RUNNING and run.started_at:
        return f"run {run.id} running in the {where} ({waited:.1f}s)"
    if run.not_before and run.not_before > utcnow():
        return (f"run {run.id} waiting in the {where} ({waited:.1f}s): it starts "
                f"{starts(run.not_before)}")
    return f"run {run.id} waiting in the {where} ({waited:.1f}s)"


def _copy_new_output(path: str | None, offset: int, write: Writer) -> int:
    if not path:
        return offset
    try:
        with open(path, "rb") as log:
            log.seek(offset)
            data = log.read()
    except FileNotFoundError:
        return offset
    if data:
        write(data)
    return offset + len(data)
