"""A cluster worker's side of the queue in PostgreSQL (`cluster_queue.WorkerQueue`): its row in
`workers`, the dispatched runs it accepts, the cancels asked of it, and its runs' logs.

What each method changes is documented on `WorkerQueue`; here is only how. A dispatched run
is accepted by one statement that matches its token and finds no worker on it yet: of two
deliveries of one message, the second waits for the first's row lock, then finds the worker
set and takes nothing. The accepting process's pid goes on the run (`pid`), so that the
worker's main process can tell a run whose process died from one still running. A run
executed at once is started by the same statement, which returns the runs as they are now,
with whether their cancel was asked and their workflow's spec (`take`).
A worker's registration and its stop are announced on the queue's wake-up channel with its
pool, as a run's end is.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import psycopg

from easyflow_cli.core.model import RUN_FIELDS, Run
from easyflow_cli.core.spec import WorkflowSpec, spec_from_dict
from easyflow_cli.storage.cluster_queue import (
    CANCEL_CHANNEL,
    Accepted,
    StartAtAccept,
    WorkerInfo,
)
from easyflow_cli.storage.pg_queue import (
    WAKEUP_CHANNEL,
    Database,
    PgRunQueue,
    fits_bigint,
    run_of_row,
)

# What `RunQueue.start` sets (no log path: a cluster's logs are chunks), at the accept's time;
# not on a run whose cancel was asked: it ends without starting.
NOT_CANCELLED = "CASE WHEN cancel_requested_at IS NULL THEN {} END"
START_SET = (f", started_at = {NOT_CANCELLED.format('%s')}, queue_wait_s = "
             f"{NOT_CANCELLED.format('round(extract(epoch FROM %s - enqueued_at), 6)')},"
             f" off_peak = {NOT_CANCELLED.format('%s::boolean')}")
RETURNED_RUN = ", ".join(RUN_FIELDS)
# The accepted runs' rows, then whether each one's cancel was asked and its workflow's spec.
TAKEN = (f"WITH taken AS (UPDATE runs SET worker = %s, host = %s, pid = %s{{}}"
         " WHERE id = ANY(%s) AND state = 'running' AND worker IS NULL"
         f" AND dispatch_token = %s RETURNING {RETURNED_RUN},"
         " cancel_requested_at IS NOT NULL AS cancel_asked)"
         " SELECT taken.*, w.spec_json, w.source_file, w.content_hash"
         " FROM taken LEFT JOIN workflows w ON w.name = taken.workflow")


class PgWorkers:
    """`WorkerQueue` over a `PgStore`, sharing its connection and its transactions."""

    def __init__(self, store: Database) -> None:
        self.store = store
        self.queue = PgRunQueue(store)

    def register(self, worker: WorkerInfo) -> None:
        with self.store.write() as conn:
            conn.execute(
                "INSERT INTO workers (name, host, pool, concurrency, pid, started_at,"
                " heartbeat_at, stopped_at) VALUES (%s, %s, %s, %s, %s, %s, %s, %s)"
                " ON CONFLICT (name) DO UPDATE SET host = excluded.host, pool = excluded.pool,"
                " concurrency = excluded.concurrency, pid = excluded.pid,"
                " started_at = excluded.started_at, heartbeat_at = excluded.heartbeat_at,"
                " stopped_at = excluded.stopped_at",
                (worker.name, worker.host, worker.pool.value, worker.concurrency, worker.pid,
                 worker.started_at, worker.heartbeat_at, worker.stopped_at))
            _announce_room(conn, worker.pool.value)

    def heartbeat(self, name: str, *, now: datetime) -> list[int]:
        rows = self.store.conn.execute(
            "WITH beat AS (UPDATE workers SET heartbeat_at = %s WHERE name = %s)"
            " SELECT id FROM runs WHERE state = 'running' AND worker = %s"
            " AND cancel_requested_at IS NOT NULL ORDER BY id", (now, name, name)).fetchall()
        return [row[0] for row in rows]

    def stop(self, name: str, *, now: datetime) -> None:
        with self.store.write() as conn:
            rows = conn.execute("UPDATE workers SET stopped_at = %s WHERE name = %s"
                                " RETURNING pool", (now, name)).fetchall()
            for (pool,) in rows:
                _announce_room(conn, pool)

    def accept(self, dispatch_token: str, run_ids: Sequence[int], *, worker: str, host: str,
               pid: int, now: datetime, start: StartAtAccept | None = None) -> list[Run]:
        return [taken.run for taken in self.take(dispatch_token, run_ids, worker=worker,
                                                 host=host, pid=pid, now=now, start=start)]

    def take(self, dispatch_token: str, run_ids: Sequence[int], *, worker: str, host: str,
             pid: int, now: datetime, start: StartAtAccept | None = None) -> list[Accepted]:
        known = [run_id for run_id in run_ids if fits_bigint(run_id)]
        if not known:
            return []
        starting, args = ("", ()) if start is None else (START_SET, (now, now, start.off_peak))
        rows = self.store.conn.execute(
            TAKEN.format(starting),
            (worker, host, pid, *args, known, dispatch_token)).fetchall()
        taken = {row[0]: _accepted(row) for row in rows}
        return [taken[run_id] for run_id in known if run_id in taken]

    def holders(self, name: str) -> dict[int, int | None]:
        """The worker's running runs, each with the pid of the process that accepted it."""
        return dict(self.store.conn.execute(
            "SELECT id, pid FROM runs WHERE state = 'running' AND worker = %s", (name,)
        ).fetchall())

    def cancel_asked(self, run_id: int) -> bool:
        """Was the run's cancel asked (`request_cancel`)?"""
        row = self.store.conn.execute(
            "SELECT cancel_requested_at IS NOT NULL FROM runs WHERE id = %s",
            (run_id,)).fetchone()
        return bool(row and row[0])

    def request_cancel(self, run_ids: Sequence[int], *, now: datetime) -> list[int]:
        known = [run_id for run_id in run_ids if fits_bigint(run_id)]
        if not known:
            return []
        with self.store.write() as conn:
            rows = conn.execute(
                "UPDATE runs SET cancel_requested_at = coalesce(cancel_requested_at, %s)"
                " WHERE id = ANY(%s) AND state = 'running' RETURNING id",
                (now, known)).fetchall()
            asked = sorted(row[0] for row in rows)
            for run_id in asked:
                conn.execute("SELECT pg_notify(%s, %s)", (CANCEL_CHANNEL, str(run_id)))
        return asked

    def append_log(self, run_id: int, seq: int, data: bytes, *, now: datetime) -> None:
        self.store.conn.execute(
            "INSERT INTO run_log_chunks (run_id, seq, at, data) VALUES (%s, %s, %s, %s)",
            (run_id, seq, now, data))

    def log_chunks(self, run_id: int, *, after: int = -1) -> list[tuple[int, bytes]]:
        if not fits_bigint(run_id):
            return []
        return [(seq, bytes(data)) for seq, data in self.store.conn.execute(
            "SELECT seq, data FROM run_log_chunks WHERE run_id = %s AND seq > %s ORDER BY seq",
            (run_id, after))]


def _accepted(row: Any) -> Accepted:
    fields = len(RUN_FIELDS)
    return Accepted(run_of_row(row[:fields]), row[fields], _spec_of(*row[fields + 1:]))


def _spec_of(spec_json: str | None, source_file: str | None,
             content_hash: str | None) -> WorkflowSpec | None:
    if spec_json is None:
        return None
    return spec_from_dict(json.loads(spec_json), source_file=source_file,
                          content_hash=content_hash)


def _announce_room(conn: psycopg.Connection, pool: str) -> None:
    """Tell the coordinator, at commit, that the pool's room changed (a worker joined or left):
    it dispatches into a new worker's slots at once, not at its next periodic look."""
    conn.execute("SELECT pg_notify(%s, %s)", (WAKEUP_CHANNEL, pool))
