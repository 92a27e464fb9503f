"""Follow a run the daemon executes: a live status line, its output as it is written."""

from __future__ import annotations

import time
from typing import BinaryIO

from easyflow_cli.cli.output import err_console
from easyflow_cli.core.model import Run, RunState
from easyflow_cli.storage.store import Store

POLL_SECONDS = 0.1


def follow_run(store: Store, run_id: int, echo: BinaryIO) -> Run:
    """Poll the run and copy its log until it ends; returns the run as it ended."""
    offset = 0
    started = time.monotonic()
    with err_console.status(f"run {run_id} queued") as status:
        while True:
            run = store.queue.get(run_id)
            offset = _copy_new_output(run.log_path, offset, echo)
            if run.state.finished:
                _copy_new_output(run.log_path, offset, echo)
                return run
            status.update(_describe(run, time.monotonic() - started))
            time.sleep(POLL_SECONDS)


def _describe(run: Run, waited: float) -> str:
    where = f"{run.mode.value} pool" if run.pool else f"{run.mode.value} queue"
    if run.state is RunState.RUNNING and run.started_at:
        return f"run {run.id} running in the {where} ({waited:.1f}s)"
    return f"run {run.id} waiting in the {where} ({waited:.1f}s)"


def _copy_new_output(path: str | None, offset: int, echo: BinaryIO) -> int:
    if not path:
        return offset
    try:
        with open(path, "rb") as log:
            log.seek(offset)
            data = log.read()
    except FileNotFoundError:
        return offset
    if data:
        echo.write(data)
        echo.flush()
    return offset + len(data)
