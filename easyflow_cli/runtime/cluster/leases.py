"""Runs nobody holds any more: a dispatch no worker accepted within `dispatch_timeout`, and the
runs of a worker whose heartbeat is older than `lease` (its process died, its machine or its
network went away; a dead worker is found only by its silence).

They are settled as the daemon settles the runs of a local worker that died
(`settlement.settle_abandoned`): one that never started goes back in line, one that started
failed, and is retried if its workflow allows. Each settlement is one transaction holding the
runs it found, so a worker accepting or finishing one meanwhile waits, then finds it gone.
"""

from __future__ import annotations

import logging
from datetime import datetime

import psycopg

from easyflow_cli.core.cluster_config import ClusterConfig
from easyflow_cli.core.durations import format_duration
from easyflow_cli.runtime.clock import Clock
from easyflow_cli.runtime.daemon.settlement import settle_abandoned
from easyflow_cli.storage.cluster_queue import CoordinatorQueue
from easyflow_cli.storage.pg_store import PgStore

log = logging.getLogger("easyflow.coordinator")

EXPIRED_NOTE = "re-queued: no worker accepted its dispatch in time"
SILENT_NOTE = "re-queued: its worker {worker} went silent before the run started"
SILENT_ERROR = "its worker {worker} stopped heartbeating for {lease} while the run ran"


class Leases:
    """Looks for runs nobody holds every third of the shorter of `lease` and
    `dispatch_timeout`: a run is settled at most a third late."""

    def __init__(self, store: PgStore, queue: CoordinatorQueue, cluster: ClusterConfig,
                 clock: Clock) -> None:
        self.store = store
        self.queue = queue
        self.cluster = cluster  # replaced on reload
        self.clock = clock
        self.due_at = clock.monotonic()

    @property
    def period(self) -> float:
        return min(self.cluster.lease, self.cluster.dispatch_timeout) / 3

    def next_in(self) -> float:
        return max(0.0, self.due_at - self.clock.monotonic())

    def settle_if_due(self, now: datetime) -> None:
        if self.clock.monotonic() >= self.due_at:
            self.settle(now)

    def settle(self, now: datetime) -> None:
        self.due_at = self.clock.monotonic() + self.period
        try:
            self._settle(now)
        except (psycopg.errors.DeadlockDetected, psycopg.errors.SerializationFailure) as exc:
            # A worker's transaction held what this one needed while needing what it held
            # (a retry's enqueue): PostgreSQL undid this one. The next look settles them.
            log.warning("settling runs nobody holds: %s; trying again at the next look",
                        str(exc).strip())

    def _settle(self, now: datetime) -> None:
        with self.store.write():
            expired = self.queue.expired_dispatches(now=now,
                                                    timeout=self.cluster.dispatch_timeout)
            settle_abandoned(self.store, expired, now, note=EXPIRED_NOTE, error=EXPIRED_NOTE)
        if expired:
            log.warning("runs %s: no worker accepted their dispatch within %s; back in the "
                        "queue", ", ".join(map(str, expired)),
                        format_duration(self.cluster.dispatch_timeout))
        with self.store.write():
            lost = self.queue.lost_runs(now=now, lease=self.cluster.lease)
            for worker, run_ids in lost.items():
                self._settle_lost(worker, run_ids, now)

    def _settle_lost(self, worker: str, run_ids: list[int], now: datetime) -> None:
        log.warning("worker %s is silent (no heartbeat for %s): settling its runs %s", worker,
                    format_duration(self.cluster.lease), ", ".join(map(str, run_ids)))
        settle_abandoned(self.store, run_ids, now, note=SILENT_NOTE.format(worker=worker),
                         error=SILENT_ERROR.format(worker=worker,
                                                   lease=format_duration(self.cluster.lease)))
