"""Summarizing in the daemon's quiet moments: the finished runs of each hour that is over are
added up into the hourly summaries (`storage/summaries.py`) a batch at a time, each batch short
enough that a request arriving meanwhile waits only a few milliseconds.

A batch's size follows its measured time, aiming at `BATCH_TARGET_S`, as pruning's does. The
first look is at start (a history may never have been summarized, or pruning or a late insert
left dirty hours); then, while runs finish, the next is when their hour is over: no polling.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import datetime, timedelta

from easyflow_cli.storage import summaries
from easyflow_cli.storage.store import Store

BATCH_TARGET_S = 0.01
FIRST_BATCH = 1000
MIN_BATCH, MAX_BATCH = 100, 100_000
# An hour is summarized this long after it is over: a run that ended in it is recorded by then.
CLOSED_AFTER_S = 60.0
# After a failed batch (the database busy or full), the next try.
BACK_OFF_S = 60.0


class Summarizing:
    """When the next batch is due, and how big it may be."""

    def __init__(self, store: Store, now: datetime,
                 timer: Callable[[], float] = time.perf_counter) -> None:
        self.store = store
        # Measures a batch's work, not the daemon's time: a fake clock in tests stands still.
        self.timer = timer
        self.batch = FIRST_BATCH
        self.due_at: datetime | None = now

    def due(self, now: datetime) -> bool:
        return self.due_at is not None and self.due_at <= now

    def look_again(self, now: datetime) -> None:
        """Runs may have finished: look once their hour is over."""
        hour = summaries.hour_start(summaries.hour_of(now))
        self._due_by(hour + timedelta(hours=1, seconds=CLOSED_AFTER_S))

    def look_now(self, now: datetime) -> None:
        """Runs of summarized hours may have changed (pruning): look at the next quiet time."""
        self.due_at = now

    def back_off(self, now: datetime) -> None:
        self.due_at = now + timedelta(seconds=BACK_OFF_S)

    def step(self, now: datetime) -> None:
        """One batch; when none is left, the next look waits for runs to finish."""
        began = self.timer()
        with self.store.write() as conn:
            summaries.make_current(conn)
            read = summaries.summarize(conn, now - timedelta(seconds=CLOSED_AFTER_S),
                                       self.batch)
        if not read:
            self.due_at = None
            return
        took = self.timer() - began
        wanted = int(self.batch * BATCH_TARGET_S / max(took, 1e-4))
        self.batch = max(MIN_BATCH, min(MAX_BATCH, wanted, 2 * self.batch))

    def _due_by(self, moment: datetime) -> None:
        if self.due_at is None or moment < self.due_at:
            self.due_at = moment
