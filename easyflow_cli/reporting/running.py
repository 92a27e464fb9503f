"""The runs running now, as `status` lists them: the daemon's and those a terminal runs in the
foreground alike, since both are `running` in the database."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from easyflow_cli.core.timeutil import to_iso
from easyflow_cli.storage.run_queue import RunQueue

RUNNING_COLUMNS = ("id", "workflow", "mode", "pool", "started_at", "elapsed_s")


def running_now(queue: RunQueue, now: datetime) -> list[dict[str, Any]]:
    """Oldest first; a run handed to a worker that has not started it yet counts from its
    claim, and shows no start."""
    rows = []
    for run in queue.running():
        since = run.started_at or run.claimed_at
        elapsed = None if since is None else round(max(0.0, (now - since).total_seconds()), 3)
        rows.append({"id": run.id, "workflow": run.workflow, "mode": run.mode.value,
                     "pool": run.pool.value if run.pool else None,
                     "started_at": to_iso(run.started_at), "elapsed_s": elapsed})
    return rows
