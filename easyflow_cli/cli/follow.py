"""Follow a run the daemon executes: a live status line, its output as it is written; and its
retries after it, each announced.

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

from easyflow_cli.cli.outcome import stop_following
from easyflow_cli.cli.output import err_console, say
from easyflow_cli.cli.run_output import RunOutput, output_of
from easyflow_cli.cli.waiting import starts
from easyflow_cli.core.durations import format_duration
from easyflow_cli.core.errors import NotFound
from easyflow_cli.core.model import Run, RunState
from easyflow_cli.core.timeutil import utcnow

if TYPE_CHECKING:
    from rich.console import Console

    from easyflow_cli.storage.backend import Backend

POLL_SECONDS = 0.1

Writer = Callable[[bytes], None]


def follow_attempts(store: Backend, run_id: int, echo: BinaryIO) -> Run:
    """Follow the run, then each retry the daemon queues for it, saying so between them; the
    last attempt as it ended. Ctrl-C stops following (exit 130), not the run."""
    following = run_id
    try:
        run = follow_run(store, run_id, echo)
        while (retry := store.queue.retried_as(run.id)) is not None:
            say(retry_notice(run, retry, max_attempts(store, run.workflow)))
            following = retry.id
            run = follow_run(store, retry.id, echo)
    except KeyboardInterrupt:
        stop_following(following)
    return run


def retry_notice(ended: Run, retry: Run, attempts: int | None) -> str:
    """`attempt 1 failed (exit 3); retrying in 30s as run 11 (attempt 2 of 3)`: the backoff
    as planned, counted from the failed attempt's end."""
    code = f" (exit {ended.exit_code})" if ended.exit_code not in (None, 0) else ""
    backoff = 0.0
    if retry.not_before is not None:
        backoff = (retry.not_before - (ended.finished_at or retry.enqueued_at)).total_seconds()
    when = f"in {format_duration(round(backoff, 3))}" if backoff > 0 else "now"
    of = f" of {attempts}" if attempts else ""
    return (f"attempt {ended.attempt} {ended.state.value.replace('_', ' ')}{code}; retrying "
            f"{when} as run {retry.id} (attempt {retry.attempt}{of})")


def max_attempts(store: Backend, workflow: str) -> int | None:
    """How many attempts a run of the workflow gets (None once it is removed)."""
    try:
        return store.get_workflow(workflow).retries + 1
    except NotFound:
        return None


def follow_run(store: Backend, run_id: int, echo: BinaryIO) -> Run:
    """Poll the run and copy its output until it ends; returns the run as it ended."""
    output = output_of(store)
    started = time.monotonic()
    with err_console.status(f"run {run_id} queued") as status:
        write, finish = _writer(echo, status.console)
        try:
            while True:
                run = store.queue.get(run_id)
                _write_new(output, run, write)
                if run.state.finished:
                    _write_new(output, run, write)
                    return run
                status.update(_describe(run, time.monotonic() - started))
                time.sleep(POLL_SECONDS)
        finally:
            finish()


def _write_new(output: RunOutput, run: Run, write: Writer) -> None:
    if data := output.new_output(run):
        write(data)


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
