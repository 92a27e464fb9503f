"""Pruning in the daemon's quiet moments: finished runs past keeping go a batch at a time, each
batch short enough that a request arriving meanwhile waits only a few milliseconds.

A batch's size follows its measured time (its roll-up and delete transaction), aiming at
`BATCH_TARGET_S`. Log files are deleted by a thread of its own: an unlink in a directory of
many files, on a busy disk, takes milliseconds each, which the loop must not wait for; the same
thread then checkpoints the batch's pages (else a long pass fills the write-ahead log until a
commit of the loop's does, fsync included). A batch waits while the last one's thread work is
still going, so it never piles up. When nothing is past
keeping, the next look is when the oldest finished run will be (a run finishing meanwhile makes
it sooner): no polling.
"""

from __future__ import annotations

import logging
import sqlite3
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import datetime, timedelta
from pathlib import Path

from easyflow_cli.core.config import Config
from easyflow_cli.core.timeutil import local_zone
from easyflow_cli.runtime.retention import (
    Removed,
    Retention,
    past_keeping,
    prune_runs,
    remove_logs,
)
from easyflow_cli.storage.store import Store, checkpoint_aside

log = logging.getLogger("easyflow.daemon")

BATCH_TARGET_S = 0.01  # a fifth of the pause a dispatch may take: room for a busy box
FIRST_BATCH = 50
MIN_BATCH, MAX_BATCH = 10, 5000
# How long the loop waits for a batch's log files at a time (for events meanwhile).
LOGS_WAIT_S = 0.01
# How soon after runs finish a workflow's `keep_runs` is looked at again.
KEEP_RUNS_LOOK_S = 60.0


class Pruning:
    """When the next batch is due, how big it may be, and the log files still being deleted."""

    def __init__(self, store: Store, config: Config, home: Path, now: datetime,
                 timer: Callable[[], float] = time.perf_counter) -> None:
        self.store = store
        self.config = config  # replaced on reload
        self.home = home
        # Measures a batch's work, not the daemon's time: a fake clock in tests stands still.
        self.timer = timer
        self.batch = FIRST_BATCH
        self.due_at: datetime | None = now
        self.keep_runs: dict[str, int] = {}  # as the last batch found them
        self.removed = Removed()  # by the pass under way
        self.longest_s = 0.0  # the longest batch of the pass under way
        self.remover = ThreadPoolExecutor(max_workers=1, thread_name_prefix="easyflow-logs")
        self.removing: Future[Removed] | None = None  # the last batch's log files

    def due(self, now: datetime) -> bool:
        return self.due_at is not None and self.due_at <= now

    def ready(self) -> bool:
        """Are the last batch's log files gone (so the next batch may go)?"""
        return self.removing is None or self.removing.done()

    def close(self) -> None:
        """Finish deleting the log files of the runs pruned."""
        self.remover.shutdown(wait=True)
        self._count_removed()

    def look_again(self, now: datetime) -> None:
        """Runs may have finished: look when they or a workflow's `keep_runs` may need it."""
        keep_s = self.config.keep_history_s
        soon = [now + timedelta(seconds=KEEP_RUNS_LOOK_S)] if self.keep_runs else []
        if keep_s is not None:
            soon.append(now + timedelta(seconds=keep_s))
        if soon:
            self._due_by(min(soon))

    def look_now(self, now: datetime) -> None:
        self.due_at = now

    def back_off(self, now: datetime) -> None:
        """A batch failed (the database busy or full): try again a while later."""
        self.due_at = now + timedelta(seconds=KEEP_RUNS_LOOK_S)

    def step(self, now: datetime) -> None:
        """One batch: runs past keeping, rolled up and deleted with their logs."""
        began = self.timer()
        self.keep_runs = self.store.keep_runs()
        retention = Retention(self.config.keep_history_s, self.keep_runs)
        ids = past_keeping(self.store.queue, retention, now, self.batch)
        if not ids:
            self._finish_pass(retention, now)
            return
        logs = prune_runs(self.store, ids, local_zone(), self.home)
        self._tune(self.timer() - began)
        self._count_removed()
        self.removed.runs += len(logs)
        self.removing = self.remover.submit(self._after_batch, logs)

    def _after_batch(self, logs: list[Path]) -> Removed:
        """In the thread: the pruned runs' log files, then a checkpoint."""
        removed = remove_logs(logs)
        try:
            checkpoint_aside(self.store.path)
        except sqlite3.Error as exc:  # busy, disk full: the loop's quiet checkpoint then
            log.debug("checkpoint after pruning skipped: %s", exc)
        return removed

    def _count_removed(self) -> None:
        if self.removing is not None and self.removing.done():
            self.removed.add(self.removing.result())
            self.removing = None

    def _tune(self, took_s: float) -> None:
        self.longest_s = max(self.longest_s, took_s)
        wanted = int(self.batch * BATCH_TARGET_S / max(took_s, 1e-4))
        self.batch = max(MIN_BATCH, min(MAX_BATCH, wanted, 2 * self.batch))

    def _finish_pass(self, retention: Retention, now: datetime) -> None:
        self._count_removed()
        if self.removed.runs:
            log.info("pruned %d finished runs past keeping (%d log files, %d bytes); longest "
                     "batch %.1f ms", self.removed.runs, self.removed.log_files,
                     self.removed.log_bytes, self.longest_s * 1000)
        self.removed, self.longest_s = Removed(), 0.0
        self.due_at = None
        oldest = self.store.queue.oldest_finished_at()
        if oldest is not None and retention.keep_s is not None:
            # Strictly later than now: a run finished exactly `keep` ago is not past it yet.
            self._due_by(max(oldest + timedelta(seconds=retention.keep_s),
                             now + timedelta(seconds=1)))

    def _due_by(self, moment: datetime) -> None:
        if self.due_at is None or moment < self.due_at:
            self.due_at = moment
