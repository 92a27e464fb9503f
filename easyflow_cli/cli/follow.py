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
from typing import TYPE_CHECKING, Any, BinaryIO

from easyflow_cli.cli.output import err_console
from easyflow_cli.cli.waiting import starts
from easyflow_cli.core.model import RunState
from easyflow_cli.core.timeutil import from_iso, utcnow
from easyflow_cli.storage.queue import get_run
from easyflow_cli.storage.store import Store

if TYPE_CHECKING:
    from rich.console import Console

POLL_SECONDS = 0.1

Writer = Callable[[bytes], None]


def follow_run(store: Store, run_id: int, echo: BinaryIO) -> dict[str, Any]:
    """Poll the run's record and copy its log until it ends; returns the final record."""
    offset = 0
    started = time.monotonic()
    with err_console.status(f"run {run_id} queued") as status:
        write, finish = _writer(echo, status.console)
        try:
            while True:
                record = get_run(store, run_id)
                offset = _copy_new_output(record.get("log_path"), offset, write)
                if RunState(record["state"]).finished:
                    _copy_new_output(record.get("log_path"), offset, write)
                    return record
                status.update(_describe(record, time.monotonic() - started))
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


def _describe(record: dict[str, Any], waited: float) -> str:
    where = f"{record['mode']} pool" if record["pool"] else f"{record['mode']} queue"
    if record["state"] == RunState.RUNNING and record["started_at"]:
        return f"run {record['id']} running in the {where} ({waited:.1f}s)"
    if record["not_before"] and from_iso(record["not_before"]) > utcnow():
        return (f"run {record['id']} waiting in the {where} ({waited:.1f}s): it starts "
                f"{starts(from_iso(record['not_before']))}")
    return f"run {record['id']} waiting in the {where} ({waited:.1f}s)"


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
