"""Follow a run the daemon executes: a live status line, its output as it is written."""

from __future__ import annotations

import time
from typing import Any, BinaryIO

from easyflow_cli.cli.output import err_console
from easyflow_cli.core.model import RunState
from easyflow_cli.storage.queue import get_run
from easyflow_cli.storage.store import Store

POLL_SECONDS = 0.1


def follow_run(store: Store, run_id: int, echo: BinaryIO) -> dict[str, Any]:
    """Poll the run's record and copy its log until it ends; returns the final record."""
    offset = 0
    started = time.monotonic()
    with err_console.status(f"run {run_id} queued") as status:
        while True:
            record = get_run(store, run_id)
            offset = _copy_new_output(record.get("log_path"), offset, echo)
            state = RunState(record["state"])
            if state.finished:
                _copy_new_output(record.get("log_path"), offset, echo)
                return record
            status.update(_describe(record, time.monotonic() - started))
            time.sleep(POLL_SECONDS)


def _describe(record: dict[str, Any], waited: float) -> str:
    where = f"{record['mode']} pool" if record["pool"] else f"{record['mode']} queue"
    if record["state"] == RunState.RUNNING and record["started_at"]:
        return f"run {record['id']} running in the {where} ({waited:.1f}s)"
    return f"run {record['id']} waiting in the {where} ({waited:.1f}s)"


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
