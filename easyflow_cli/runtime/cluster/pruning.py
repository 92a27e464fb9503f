"""History retention on a cluster: finished runs past `[history] keep` or a workflow's
`keep_runs` rolled up and deleted (`RunQueue.prune`, which takes their log chunks too) by the
rules of `runtime/retention.py`, as the daemon prunes on one box.

A thread of its own on a connection of its own does it, a batch per transaction, so the
coordinator's dispatches never wait for a pass. When nothing is left past keeping, it sleeps
until the oldest finished run will be (a run finishing later is past keeping later still), or,
for a `keep_runs`, until a minute after the coordinator last woke (runs may have finished), or
until a reload: no polling.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable
from datetime import datetime, timedelta

from easyflow_cli.core.config import Config
from easyflow_cli.core.timeutil import local_zone
from easyflow_cli.runtime.clock import Clock
from easyflow_cli.runtime.daemon.pruning import KEEP_RUNS_LOOK_S
from easyflow_cli.runtime.retention import MANUAL_BATCH, Retention, past_keeping
from easyflow_cli.storage.backend import Backend

log = logging.getLogger("easyflow.coordinator")

DB_TROUBLE_WAIT_S = 30.0


class HistoryPruning:
    def __init__(self, open_store: Callable[[], Backend], config: Config, clock: Clock,
                 batch: int = MANUAL_BATCH) -> None:
        self.open_store = open_store
        self.config = config  # replaced on reload
        self.clock = clock
        self.batch = batch
        self.lock = threading.Lock()
        self.due_at: datetime | None = clock.now()
        self.keeps_runs = False  # some workflow sets `keep_runs` (as the last pass found)
        self.woken = threading.Event()
        self.stopping = False
        self.thread = threading.Thread(target=self._serve, name="easyflow-prune", daemon=True)

    def start(self) -> None:
        self.thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        """Ask the thread to stop after its batch; a batch is one transaction, never half done."""
        self.stopping = True
        self.woken.set()
        if self.thread.is_alive():
            self.thread.join(timeout)

    def look_now(self, now: datetime) -> None:
        """A reload: `keep` may be shorter now."""
        self._due_by(now)

    def look_again(self, now: datetime) -> None:
        """The coordinator woke: runs may have finished past a workflow's `keep_runs`."""
        if self.keeps_runs:
            self._due_by(now + timedelta(seconds=KEEP_RUNS_LOOK_S))

    def prune(self, store: Backend, now: datetime) -> int:
        """Every run past keeping, a batch per transaction; how many. Sets the next look."""
        keep_runs = store.keep_runs()
        self.keeps_runs = bool(keep_runs)
        retention = Retention(self.config.keep_history_s, keep_runs)
        pruned = 0
        while not self.stopping and (ids := past_keeping(store.queue, retention, now,
                                                          self.batch)):
            pruned += len(store.queue.prune(ids, zone=local_zone()))
        if pruned:
            log.info("pruned %d finished runs past keeping", pruned)
        with self.lock:
            self.due_at = self._next_look(store, retention, now)
        return pruned

    def _next_look(self, store: Backend, retention: Retention,
                   now: datetime) -> datetime | None:
        if retention.keep_s is None:
            return None  # `keep_runs` alone: looked at again when the coordinator wakes
        oldest = store.queue.oldest_finished_at()
        keep = timedelta(seconds=retention.keep_s)
        if oldest is None:
            return now + keep  # the first run to finish from now on
        # Strictly later than now: a run finished exactly `keep` ago is not past it yet.
        return max(oldest + keep, now + timedelta(seconds=1))

    def _due_by(self, moment: datetime) -> None:
        with self.lock:
            if self.due_at is not None and self.due_at <= moment:
                return  # the thread wakes by then already
            self.due_at = moment
        self.woken.set()

    def _wait_s(self) -> float | None:
        with self.lock:
            due_at = self.due_at
        return None if due_at is None else (due_at - self.clock.now()).total_seconds()

    # ------------------------------------------------------------------ the thread

    def _serve(self) -> None:
        store: Backend | None = None
        while not self.stopping:
            self.woken.clear()
            wait = self._wait_s()
            if wait is not None and wait <= 0:
                try:
                    store = store or self.open_store()
                    self.prune(store, self.clock.now())
                    continue
                except Exception as exc:  # the database or a bug: log, wait, go on; never die
                    log.error("pruning history: %s; trying again in %gs", exc,
                              DB_TROUBLE_WAIT_S)
                    _closed(store)
                    store = None  # a connection that failed is opened again
                    wait = DB_TROUBLE_WAIT_S
            self.woken.wait(wait)
        _closed(store)


def _closed(store: Backend | None) -> None:
    if store is not None:
        with contextlib.suppress(Exception):  # it failed already: closing is all that is left
            store.close()
