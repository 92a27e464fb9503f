"""A worker's side of the cluster queue (`cluster_queue.WorkerQueue`) on PostgreSQL: what
crosses machines for a run a worker executes, its log chunks and a cancel asked of it.

Imported only with a `[cluster]` database (psycopg is an optional extra).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from easyflow_cli.storage.cluster_queue import CANCEL_CHANNEL
from easyflow_cli.storage.pg_queue import Database, fits_bigint


class PgWorkers:
    """The worker transitions of one PostgreSQL store."""

    def __init__(self, store: Database) -> None:
        self.store = store

    def request_cancel(self, run_ids: Sequence[int], *, now: datetime) -> list[int]:
        """Marks the running runs, then announces each on CANCEL_CHANNEL (sent at commit, so
        the worker that hears it reads the mark); a run asked twice keeps its first time."""
        known = [run_id for run_id in run_ids if fits_bigint(run_id)]
        if not known:
            return []
        with self.store.write() as conn:
            asked = [row[0] for row in conn.execute(
                "UPDATE runs SET cancel_requested_at = coalesce(cancel_requested_at, %s)"
                " WHERE id = ANY(%s) AND state = 'running' RETURNING id", (now, known))]
            for run_id in asked:
                conn.execute("SELECT pg_notify(%s, %s)", (CANCEL_CHANNEL, str(run_id)))
        return sorted(asked)

    def append_log(self, run_id: int, seq: int, data: bytes, *, now: datetime) -> None:
        """A chunk written twice (a message delivered again) is kept once."""
        with self.store.write() as conn:
            conn.execute("INSERT INTO run_log_chunks (run_id, seq, at, data)"
                         " VALUES (%s, %s, %s, %s) ON CONFLICT DO NOTHING",
                         (run_id, seq, now, data))

    def log_chunks(self, run_id: int, *, after: int = -1) -> list[tuple[int, bytes]]:
        if not fits_bigint(run_id):
            return []
        rows = self.store.conn.execute(
            "SELECT seq, data FROM run_log_chunks WHERE run_id = %s AND seq > %s ORDER BY seq",
            (run_id, after)).fetchall()
        return [(seq, bytes(data)) for seq, data in rows]
