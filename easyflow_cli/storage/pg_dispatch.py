"""The coordinator's side of a cluster's queue (`cluster_queue.CoordinatorQueue`): how much
room each pool's live workers have, dispatches of claimed runs, and the runs whose dispatch or
worker is gone.

A dispatch is a claim (`PgRunQueue.claim`, in the queue's order, within `max_concurrent`) that
names no worker yet: the claim and the dispatch tokens commit in one transaction, and only
then may the coordinator hand the dispatch to Celery, so that no worker ever gets a token the
database does not hold. Where no `max_concurrent` is to be counted and no batch made, that
transaction is one statement (`pg_queue.claim_dispatches`), the tokens made by PostgreSQL: a
wake-up then costs the coordinator a read of its `Rooms` and a claim per pool with work.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta

from easyflow_cli.core.model import Mode, PoolName
from easyflow_cli.storage.cluster_queue import Dispatch, Rooms, WorkerInfo
from easyflow_cli.storage.pg_queue import Database, claim_dispatches
from easyflow_cli.storage.run_queue import Hand, RunQueue

WORKER_COLUMNS = "name, host, pool, concurrency, pid, started_at, heartbeat_at, stopped_at"
# A claim names a worker; a dispatch's runs have none until one accepts them. The claim's
# placeholder is replaced in the claim's own transaction: nobody else ever reads it.
UNACCEPTED = ""
# Per mode: its pool's free slots (a batch takes one) and whether a run is ready now (the
# first one the ready index finds: a scalar subquery, which the planner cannot turn into a scan
# of the whole queue); for all, whether a workflow sets a `max_concurrent` and the next
# promotion. One round trip: the coordinator reads it at every wake-up.
ROOMS_SQL = (
    "SELECT m.mode, (SELECT coalesce(sum(concurrency), 0) FROM workers WHERE pool = m.pool"
    "  AND stopped_at IS NULL AND heartbeat_at > %s)"
    " - (SELECT count(DISTINCT coalesce(batch_id, id::text)) FROM runs"
    "  WHERE state = 'running' AND pool = m.pool),"
    " (SELECT true FROM runs WHERE state = 'queued' AND mode = m.mode"
    "  AND (not_before IS NULL OR not_before <= %s) LIMIT 1) IS NOT NULL,"
    " EXISTS (SELECT 1 FROM workflows WHERE max_concurrent IS NOT NULL),"
    " (SELECT min(promote_at) FROM runs WHERE state = 'queued')"
    " FROM unnest(%s::text[], %s::text[]) AS m(mode, pool)")


def new_token() -> str:
    return uuid.uuid4().hex


class PgDispatch:
    """`CoordinatorQueue` over a `PgStore`, sharing its connection and its transactions."""

    def __init__(self, store: Database, queue: RunQueue) -> None:
        self.store = store
        self.queue = queue

    def free_slots(self, pool: PoolName, *, now: datetime, lease: float) -> int:
        """A worker slot holds one run, or one eco batch: a batch counts once."""
        row = self.store.conn.execute(
            "SELECT (SELECT coalesce(sum(concurrency), 0) FROM workers WHERE pool = %s"
            " AND stopped_at IS NULL AND heartbeat_at > %s),"
            " (SELECT count(DISTINCT coalesce(batch_id, id::text)) FROM runs"
            " WHERE state = 'running' AND pool = %s)",
            (pool.value, now - timedelta(seconds=lease), pool.value)).fetchone()
        assert row is not None  # a SELECT without FROM gives one row
        return max(0, row[0] - row[1])

    def rooms(self, *, now: datetime, lease: float) -> Rooms:
        modes = list(Mode)
        rows = self.store.conn.execute(ROOMS_SQL, (
            now - timedelta(seconds=lease), now, [mode.value for mode in modes],
            [PoolName.of(mode).value for mode in modes])).fetchall()
        by_mode = {Mode(row[0]): row for row in rows}
        return Rooms(free={mode: max(0, row[1]) for mode, row in by_mode.items()},
                     ready=frozenset(mode for mode, row in by_mode.items() if row[2]),
                     limited=rows[0][3], next_promotion=rows[0][4])

    def dispatch(self, mode: Mode, *, now: datetime, pool: PoolName, slots: int,
                 batch: bool, limited: bool = True) -> list[Dispatch]:
        if slots <= 0:
            return []
        if not batch and not limited:
            return [Dispatch(token, mode, pool, (run_id,)) for run_id, token in
                    claim_dispatches(self.store.conn, mode, now, pool, slots)]
        batch_id = uuid.uuid4().hex[:12] if batch else None
        with self.store.write() as conn:
            [runs] = self.queue.claim(mode, now=now, pool=pool,
                                      hands=[Hand(UNACCEPTED, slots, batch_id)])
            ids = tuple(run.id for run in runs)
            if batch and ids:
                dispatches = [Dispatch(new_token(), mode, pool, ids, batch_id)]
            else:
                dispatches = [Dispatch(new_token(), mode, pool, (run_id,)) for run_id in ids]
            with conn.cursor() as cursor:
                cursor.executemany(
                    "UPDATE runs SET worker = NULL, dispatch_token = %s, dispatched_at = %s"
                    " WHERE id = ANY(%s)",
                    [(sent.token, now, list(sent.run_ids)) for sent in dispatches])
        return dispatches

    def expired_dispatches(self, *, now: datetime, timeout: float) -> list[int]:
        """Inside `write()`, the runs stay locked to its end (see `lost_runs`)."""
        return [row[0] for row in self.store.conn.execute(
            "SELECT id FROM runs WHERE state = 'running' AND worker IS NULL"
            " AND dispatched_at <= %s ORDER BY id FOR UPDATE SKIP LOCKED",
            (now - timedelta(seconds=timeout),))]

    def lost_runs(self, *, now: datetime, lease: float) -> dict[str, list[int]]:
        """A worker with no row at all (removed by hand) has lost its runs too; runs a terminal
        executes (the foreground pool) are not the workers' to lose.

        Inside `write()`, the runs stay locked to its end, so that they are settled as they
        were found: a worker accepting or finishing one meanwhile waits, then finds it no
        longer its own. One it holds locked now is skipped (it is alive)."""
        lost: dict[str, list[int]] = {}
        for worker, run_id in self.store.conn.execute(
            "SELECT runs.worker, runs.id FROM runs LEFT JOIN workers ON workers.name = runs.worker"
            " WHERE runs.state = 'running' AND runs.worker IS NOT NULL AND runs.pool <> %s"
            " AND (workers.name IS NULL OR workers.stopped_at IS NOT NULL"
            " OR workers.heartbeat_at <= %s) ORDER BY runs.id FOR UPDATE OF runs SKIP LOCKED",
            (PoolName.FOREGROUND.value, now - timedelta(seconds=lease))):
            lost.setdefault(worker, []).append(run_id)
        return lost

    def workers(self) -> list[WorkerInfo]:
        rows = self.store.conn.execute(
            f"SELECT {WORKER_COLUMNS} FROM workers ORDER BY heartbeat_at DESC, name")
        return [WorkerInfo(name, host, PoolName(pool), *rest)
                for name, host, pool, *rest in rows]
