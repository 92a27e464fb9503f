"""Wake-ups by LISTEN/NOTIFY: what the socket is to the local daemon, for a cluster.

The PostgreSQL queue announces, at commit, each mode that got a run which may be ready
(`pg_queue.WAKEUP_CHANNEL`). `Wakeups` listens on a connection of its own: its `fileno()`
goes into the coordinator's selector, and `modes()` says which queues to claim from.
"""

from __future__ import annotations

from easyflow_cli.core.model import Mode
from easyflow_cli.storage.damaged_rows import MODES
from easyflow_cli.storage.pg_queue import WAKEUP_CHANNEL
from easyflow_cli.storage.pg_store import connect


class Wakeups:
    """A listening connection. Use as a context manager, or call `close()`."""

    def __init__(self, url: str) -> None:
        self.conn = connect(url)
        self.conn.execute(f"LISTEN {WAKEUP_CHANNEL}")

    def fileno(self) -> int:
        """Readable when an announcement may have arrived."""
        return self.conn.fileno()

    def modes(self) -> set[Mode]:
        """The modes announced since the last call, without waiting (none: a spurious wake)."""
        return {Mode(notice.payload) for notice in self.conn.notifies(timeout=0)
                if notice.payload in MODES}

    def close(self) -> None:
        self.conn.close()

    def __enter__(self) -> Wakeups:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
