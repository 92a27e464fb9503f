"""The policy the running daemon plans with, published in the database for the clients that
queue runs: a run is planned once, by whoever queues it, so a client plans by the daemon's
off-peak window and promotion margin rather than by whatever config it loaded itself.

One row, written when the daemon starts and when it reloads its configuration. A row left by
a daemon that died is harmless: clients read it only while a daemon answers on the socket, and
the next daemon writes its own before it serves.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from easyflow_cli.core.offpeak import parse_window
from easyflow_cli.core.planning import QueuePolicy
from easyflow_cli.core.timeutil import to_iso
from easyflow_cli.storage.sqlite_queue import Database


def publish_policy(store: Database, policy: QueuePolicy, now: datetime) -> None:
    window = policy.off_peak
    with store.write():
        store.conn.execute(
            "INSERT OR REPLACE INTO daemon_policy (id, promote_within_s, off_peak, published_at)"
            " VALUES (1, ?, ?, ?)", (policy.promote_within.total_seconds(),
                                     None if window is None else window.text(), to_iso(now)))


def published_policy(store: Database) -> QueuePolicy | None:
    """The last policy a daemon published, if one ever did."""
    row = store.conn.execute("SELECT promote_within_s, off_peak FROM daemon_policy").fetchone()
    if row is None:
        return None
    return QueuePolicy(timedelta(seconds=row[0]), parse_window(row[1] or ""))
