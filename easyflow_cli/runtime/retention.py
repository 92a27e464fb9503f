"""Retention: which finished runs are past keeping, and pruning them with their log files.

The run queue's `prune` rolls each run up before it deletes it (reports keep counting it);
here are the rules (`[history] keep`, a workflow's `keep_runs`) and the log files. The daemon
prunes a batch at a time while it is quiet (`daemon/pruning.py`); `easyflow runs prune` does it
by hand.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta, tzinfo
from pathlib import Path
from typing import Any

from easyflow_cli.core.paths import run_log_path
from easyflow_cli.storage.backend import Backend
from easyflow_cli.storage.run_queue import PrunedRun, RunQueue


@dataclass(frozen=True)
class Retention:
    """How long finished runs keep their detail (None: forever), and per workflow how many of
    its newest finished runs it keeps whatever their age."""

    keep_s: float | None
    keep_runs: Mapping[str, int] = field(default_factory=dict)

    def cutoff(self, now: datetime) -> datetime | None:
        return None if self.keep_s is None else now - timedelta(seconds=self.keep_s)


@dataclass
class Removed:
    """What a prune removed (or, dry, would remove)."""

    runs: int = 0
    log_files: int = 0
    log_bytes: int = 0

    def add(self, other: Removed) -> None:
        self.runs += other.runs
        self.log_files += other.log_files
        self.log_bytes += other.log_bytes

    def as_json(self) -> dict[str, Any]:
        return {"runs": self.runs, "log_files": self.log_files, "log_bytes": self.log_bytes}


def past_keeping(queue: RunQueue, retention: Retention, now: datetime, limit: int) -> list[int]:
    """Up to `limit` finished runs past keeping: older than `keep`, then beyond a workflow's
    `keep_runs`."""
    cutoff = retention.cutoff(now)
    ids = [] if cutoff is None else queue.finished_before(cutoff, limit=limit)
    for workflow, keep in retention.keep_runs.items():
        if len(ids) >= limit:
            break
        ids += queue.beyond_newest(workflow, keep, limit=limit - len(ids))
    return list(dict.fromkeys(ids))


# Runs per transaction when pruning by hand: a daemon's claims wait for at most one of these.
MANUAL_BATCH = 500


def prune_older_than(store: Backend, cutoff: datetime, *, workflow: str | None, zone: tzinfo,
                     home: Path, dry_run: bool = False) -> Removed:
    """`easyflow runs prune`: every run (of the workflow) that finished before `cutoff`."""
    if dry_run:
        ids = store.queue.finished_before(cutoff, workflow=workflow, limit=-1)
        return would_remove(ids, home)
    removed = Removed()
    while ids := store.queue.finished_before(cutoff, workflow=workflow, limit=MANUAL_BATCH):
        logs = prune_runs(store, ids, zone, home)
        removed.add(remove_logs(logs))
        removed.runs += len(logs)
    return removed


def prune_runs(store: Backend, run_ids: list[int], zone: tzinfo, home: Path) -> list[Path]:
    """Roll up and delete these finished runs; the log files they leave, one per run pruned,
    to delete after the commit (a crash between leaves a log file without its run, never a run
    without its log)."""
    return [_log_file(run, home) for run in store.queue.prune(run_ids, zone=zone)]


def remove_logs(paths: list[Path]) -> Removed:
    """Delete log files; how many there were and their bytes (runs left at 0)."""
    removed = Removed()
    for path in paths:
        size = _remove(path)
        if size is not None:
            removed.log_files += 1
            removed.log_bytes += size
    return removed


def would_remove(run_ids: list[int], home: Path) -> Removed:
    """What pruning these runs would remove (the log files the daemon writes for them)."""
    removed = Removed(runs=len(run_ids))
    for run_id in run_ids:
        size = _size(run_log_path(home, run_id))
        if size is not None:
            removed.log_files += 1
            removed.log_bytes += size
    return removed


def _log_file(run: PrunedRun, home: Path) -> Path:
    return Path(run.log_path) if run.log_path else run_log_path(home, run.run_id)


def _size(path: Path) -> int | None:
    try:
        return path.stat().st_size
    except OSError:
        return None


def _remove(path: Path) -> int | None:
    """Delete a file; its size, or None if there was none (or it cannot be deleted: then it
    stays, as a file of no run, which nothing reads)."""
    size = _size(path)
    try:
        os.unlink(path)
    except OSError:
        return None
    return size
