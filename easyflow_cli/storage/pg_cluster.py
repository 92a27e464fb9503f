"""What the commands read and ask of a cluster on PostgreSQL (`backend.Cluster`): who
coordinates, which workers are registered and what they run, a run's log chunks, a cancel.

The coordinator is whoever holds this schema's coordinator lock (`cluster_queue.py`):
PostgreSQL lists it in `pg_locks` for as long as its session lives, so a coordinator that
died is never shown.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from easyflow_cli.storage.backend import Coordinator, WorkerState
from easyflow_cli.storage.cluster_queue import COORDINATOR_HOLDER_SQL, COORDINATOR_LOCK
from easyflow_cli.storage.pg_queue import Database
from easyflow_cli.storage.pg_workers import PgWorkers

COORDINATOR_SQL = (
    "SELECT pid, host(client_addr), coalesce(application_name, ''), backend_start"
    f" FROM pg_stat_activity WHERE pid IN ({COORDINATOR_HOLDER_SQL})")
WORKERS_SQL = (
    "SELECT w.name, w.host, w.pool, w.concurrency,"
    " extract(epoch FROM %(now)s - w.heartbeat_at)::float8, w.stopped_at IS NOT NULL,"
    " (SELECT count(*) FROM runs AS r WHERE r.state = 'running' AND r.worker = w.name)"
    " FROM workers AS w ORDER BY w.heartbeat_at DESC, w.name")


class PgCluster:
    """The cluster of one PostgreSQL store."""

    def __init__(self, store: Database) -> None:
        self.store = store
        self.workers = PgWorkers(store)

    def coordinator(self) -> Coordinator | None:
        row = self.store.conn.execute(COORDINATOR_SQL, (COORDINATOR_LOCK,)).fetchone()
        return None if row is None else Coordinator(row[0], row[1], row[2], row[3])

    def worker_states(self, *, now: datetime, lease: float) -> list[WorkerState]:
        rows = self.store.conn.execute(WORKERS_SQL, {"now": now}).fetchall()
        return [WorkerState(name, host, pool, concurrency, max(age, 0.0), running,
                            alive=not stopped and age <= lease, stopped=stopped)
                for name, host, pool, concurrency, age, stopped, running in rows]

    def request_cancel(self, run_ids: Sequence[int], *, now: datetime) -> list[int]:
        return self.workers.request_cancel(run_ids, now=now)

    def log_chunks(self, run_id: int, *, after: int = -1) -> list[tuple[int, bytes]]:
        return self.workers.log_chunks(run_id, after=after)
