"""Which coordinator is active: the one holding `COORDINATOR_LOCK`, an advisory lock taken on
a connection of its own and held for as long as that connection lives.

PostgreSQL releases a session's advisory locks when its connection ends, however the process
holding it ended (a kill -9 closes its socket), so a standby that keeps asking takes over as
soon as the active coordinator is gone. The lock's second key is the schema: two
installations in two schemas of one database each have their own coordinator.
"""

from __future__ import annotations

import psycopg

from easyflow_cli.storage.cluster_queue import COORDINATOR_LOCK, TRY_LOCK_COORDINATOR_SQL
from easyflow_cli.storage.pg_store import connect


class Leadership:
    """The lock's connection. Use as a context manager, or call `close()`."""

    def __init__(self, url: str) -> None:
        self.conn = connect(url)
        self.held = False

    def try_take(self) -> bool:
        """Take the lock if no other coordinator holds it, without waiting."""
        row = self.conn.execute(TRY_LOCK_COORDINATOR_SQL, (COORDINATOR_LOCK,)).fetchone()
        self.held = bool(row and row[0])
        return self.held

    def still_held(self) -> bool:
        """Whether the connection, and so the lock, is still alive. Readable data on the
        connection (its `fileno()` in a selector) is the server ending it, or a notice."""
        if not self.held:
            return False
        try:
            self.conn.execute("SELECT 1")
        except psycopg.Error:
            self.held = False
        return self.held

    def fileno(self) -> int:
        return self.conn.fileno()

    def close(self) -> None:
        """Ends the connection: the lock goes with it."""
        self.held = False
        self.conn.close()

    def __enter__(self) -> Leadership:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
