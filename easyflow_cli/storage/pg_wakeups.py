"""Wake-ups by LISTEN/NOTIFY: what the socket is to the local daemon, for a cluster.

The PostgreSQL queue announces, at commit, each mode that got a run which may be ready, or
whose pool got room (a run ended, a worker registered or stopped: `pg_queue.WAKEUP_CHANNEL`).
`Wakeups` listens on a connection of its own: its `fileno()` goes into the coordinator's
selector, and `modes()` says which queues to claim from. `Changes` listens, the same way, for
changes of workflows and schedules (`pg_store.CHANGES_CHANNEL`) made by other sessions.
"""

from __future__ import annotations

from typing import Self

import psycopg

from easyflow_cli.core.model import Mode
from easyflow_cli.storage.damaged_rows import MODES
from easyflow_cli.storage.pg_queue import WAKEUP_CHANNEL
from easyflow_cli.storage.pg_store import CHANGES_CHANNEL, connect


class Listener:
    """A connection listening on one channel. Use as a context manager, or call `close()`."""

    channel: str

    def __init__(self, url: str) -> None:
        self.conn = connect(url)
        self.conn.execute(f"LISTEN {self.channel}")

    def fileno(self) -> int:
        """Readable when an announcement may have arrived."""
        return self.conn.fileno()

    def heard(self) -> list[psycopg.Notify]:
        """The announcements since the last call, without waiting."""
        return list(self.conn.notifies(timeout=0))

    def close(self) -> None:
        self.conn.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class Wakeups(Listener):
    channel = WAKEUP_CHANNEL

    def modes(self) -> set[Mode]:
        """The modes announced since the last call, without waiting (none: a spurious wake)."""
        return {Mode(notice.payload) for notice in self.heard() if notice.payload in MODES}


class Changes(Listener):
    """Changes of workflows or schedules, but those of the session `own_pid` (the listener's
    own store: what it changed itself, it knows)."""

    channel = CHANGES_CHANNEL

    def __init__(self, url: str, own_pid: int | None = None) -> None:
        super().__init__(url)
        self.own_pid = own_pid

    def changed(self) -> bool:
        """Did another session change workflows or schedules since the last call?"""
        return any(notice.pid != self.own_pid for notice in self.heard())
