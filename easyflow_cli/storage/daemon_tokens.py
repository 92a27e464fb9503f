"""The tokens that mark the processes of this database's runs (runtime/run_marker.py).

Each daemon start draws a new token and records it here before its workers run anything; a
foreground runner marks its steps with the newest one. Recovery after a kill -9 and the
settlement of a foreground run whose terminal died look for the marks of every token kept: a
run may have been started under an older one. Run ids are never handed out twice in one
database, so a run id with any of its tokens names that run's processes only.
"""

from __future__ import annotations

from datetime import datetime

from easyflow_cli.core.timeutil import to_iso
from easyflow_cli.storage.sqlite_queue import Database

# Older tokens are forgotten: a run started that many daemon starts ago has long been settled.
KEPT = 32


def record_token(store: Database, token: str, now: datetime) -> None:
    with store.write():
        store.conn.execute("INSERT INTO daemon_tokens (token, created_at) VALUES (?, ?)",
                           (token, to_iso(now)))
        store.conn.execute("DELETE FROM daemon_tokens WHERE rowid NOT IN (SELECT rowid FROM"
                           " daemon_tokens ORDER BY rowid DESC LIMIT ?)", (KEPT,))


def known_tokens(store: Database) -> list[str]:
    """Every token kept, the newest first."""
    rows = store.conn.execute("SELECT token FROM daemon_tokens ORDER BY rowid DESC")
    return [row[0] for row in rows]


def newest_token(store: Database) -> str | None:
    tokens = known_tokens(store)
    return tokens[0] if tokens else None
