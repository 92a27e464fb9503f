"""What a cluster's notification delivery holds in PostgreSQL: the outbox, one deliverer at a
time, and the announcements that a run's end wrote events to deliver.

Only the active coordinator delivers, but two coordinators can overlap for a moment (one that
lost its lock finishing a send while the standby takes over). The delivery connection therefore
holds an advisory lock of its own, `OUTBOX_LOCK`, for as long as it lives: a second deliverer
waits until the first one's connection ends, however it ended, so no row is sent by two at once.
A row sent but not yet marked when its deliverer died is sent again by the next one, with the
same `event_id` (at least once, as on one box).
"""

from __future__ import annotations

from easyflow_cli.core.errors import EasyflowError
from easyflow_cli.storage.pg_outbox import EVENTS_CHANNEL
from easyflow_cli.storage.pg_store import LOCK_KEY, PgStore, connect

OUTBOX_LOCK = ".outbox"
TRY_LOCK_OUTBOX_SQL = f"SELECT pg_try_advisory_lock({LOCK_KEY})"


class OutboxHeld(EasyflowError):
    """Another deliverer's connection still holds the outbox."""


def open_outbox(url: str) -> PgStore:
    """A store whose connection holds the outbox lock; `OutboxHeld` while another one does."""
    store = PgStore(url)
    row = store.conn.execute(TRY_LOCK_OUTBOX_SQL, (OUTBOX_LOCK,)).fetchone()
    if not (row and row[0]):
        store.close()
        raise OutboxHeld("another coordinator's delivery still holds the outbox; waiting for "
                         "its connection to end")
    return store


class EventWakeups:
    """A connection listening for new events. Use as a context manager, or call `close()`."""

    def __init__(self, url: str) -> None:
        self.conn = connect(url)
        self.conn.execute(f"LISTEN {EVENTS_CHANNEL}")

    def fileno(self) -> int:
        """Readable when an announcement may have arrived."""
        return self.conn.fileno()

    def arrived(self) -> bool:
        """Whether any came since the last call, without waiting."""
        return bool(list(self.conn.notifies(timeout=0)))

    def close(self) -> None:
        self.conn.close()

    def __enter__(self) -> EventWakeups:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
