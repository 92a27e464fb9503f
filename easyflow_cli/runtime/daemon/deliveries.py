"""The daemon's notification delivery: a thread of its own, with its own database connection,
so that a channel that is slow or down never holds up the loop that dispatches runs.

It sleeps until a delivery is due or a late run is to be noticed, or until the loop says that
an end it wrote may have made events (`wake`). Each row is marked delivered only once its
channel took it; a failure is tried again after a doubling back-off, and given up after
`MAX_ATTEMPTS`. A channel that keeps failing is logged once, then at most every
`STILL_FAILING_EVERY_S`, and shown by `status` (`trouble`).
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from easyflow_cli.core.config import Config
from easyflow_cli.core.model import Mode
from easyflow_cli.core.notify import Channel, Event, NoticeBook, NoticeRule, NotifySpec
from easyflow_cli.core.timeutil import to_iso
from easyflow_cli.runtime.clock import Clock
from easyflow_cli.runtime.notify_channels import DeliveryFailed, send
from easyflow_cli.storage.backend import Backend
from easyflow_cli.storage.outbox import Delivery
from easyflow_cli.storage.store import Store

log = logging.getLogger("easyflow.daemon")

BACKOFF_FIRST_S = 5.0
BACKOFF_MAX_S = 900.0
MAX_ATTEMPTS = 12
STILL_FAILING_EVERY_S = 600.0
DB_TROUBLE_WAIT_S = 5.0
BATCH = 20

Sender = Callable[[Channel, NotifySpec, dict[str, Any]], str]
# The thread's own connection: the daemon's SQLite database, or a cluster's PostgreSQL.
OpenStore = Callable[[], Backend]


def notice_book(config: Config, store: Store) -> NoticeBook:
    """Every registered workflow's rule under this config's defaults."""
    timeouts = {mode: config.pool(mode).timeout for mode in Mode}
    return NoticeBook.build(config.notify, timeouts,
                            ((spec.name, spec.notify, spec.retries)
                             for spec in store.all_workflows()))


def backoff(attempts: int) -> float:
    """Seconds before the next try of a delivery that has failed `attempts` times."""
    return min(BACKOFF_FIRST_S * 2 ** max(0, attempts - 1), BACKOFF_MAX_S)


@dataclass
class Trouble:
    """A channel of a workflow that keeps failing."""

    since: datetime
    failures: int
    error: str
    logged_at: float  # monotonic

    def to_json(self, key: tuple[str, Channel]) -> dict[str, Any]:
        return {"workflow": key[0], "channel": key[1].value, "since": to_iso(self.since),
                "failures": self.failures, "error": self.error}


class Deliveries:
    def __init__(self, open_store: OpenStore, clock: Clock, book: NoticeBook,
                 sender: Sender = send) -> None:
        self.open_store = open_store
        self.clock = clock
        self.book = book  # replaced whole on reload: the thread reads it as one value
        self.sender = sender
        self.woken = threading.Event()
        self.stopping = False
        self.lock = threading.Lock()
        self.troubles: dict[tuple[str, Channel], Trouble] = {}
        self.thread = threading.Thread(target=self._serve, name="easyflow-notify", daemon=True)
        self.events_seen = 0  # the store's count of events written, when last woken for them

    def start(self) -> None:
        self.thread.start()

    def wake(self) -> None:
        self.woken.set()

    def runs_queued(self) -> None:
        """New runs may become late: look again, if any workflow is watched for that."""
        if self.book.watching(Event.LATE):
            self.woken.set()

    def wake_for(self, store: Store) -> None:
        """Wake the thread if ends written since the last call made events (the loop asks
        after each wake-up's write: one comparison)."""
        written = store.queue.events_written
        if written != self.events_seen:
            self.events_seen = written
            self.woken.set()

    def stop(self, timeout: float = 2.0) -> None:
        """Ask the thread to stop; a send under way is not waited for past `timeout` (its
        row stays pending and is sent again by the next start)."""
        self.stopping = True
        self.woken.set()
        if self.thread.is_alive():
            self.thread.join(timeout)

    def trouble(self) -> list[dict[str, Any]]:
        with self.lock:
            return [t.to_json(key) for key, t in sorted(self.troubles.items())]

    # ------------------------------------------------------------------ the thread

    def _serve(self) -> None:
        store: Backend | None = None
        while not self.stopping:
            self.woken.clear()
            try:
                store = store or self.open_store()
                wait = self.round(store)
            except Exception as exc:  # the database or a bug: log, wait, go on; never die
                log.error("notification delivery: %s; trying again in %gs", exc,
                          DB_TROUBLE_WAIT_S)
                _closed(store)
                store = None  # opened again: a server may have ended the connection
                wait = DB_TROUBLE_WAIT_S
            self.woken.wait(wait)
        _closed(store)

    def round(self, store: Backend) -> float | None:
        """Write late events that are due, deliver what is due; seconds until the next thing
        (None: nothing until woken)."""
        book = self.book
        written, next_late = store.outbox.sweep_late(book, self.clock.now())
        if written:
            log.info("%d late run(s) noticed", written)
        for delivery in store.outbox.due(self.clock.now(), BATCH):
            if self.stopping:
                return 0.0
            self.deliver(store, book, delivery)
        moments = [m for m in (store.outbox.next_due_at(), next_late) if m is not None]
        if not moments:
            return None
        return max(0.0, (min(moments) - self.clock.now()).total_seconds())

    def deliver(self, store: Backend, book: NoticeBook, delivery: Delivery) -> None:
        rule = self.rule(store, book, delivery)
        outbox = store.outbox
        if rule is None or delivery.channel not in rule.channels:
            outbox.give_up(delivery.id, answer="no longer configured")
            return
        try:
            answer = self.sender(delivery.channel, rule.spec, delivery.payload)
        except DeliveryFailed as exc:
            self._failed(store, delivery, str(exc))
            return
        except Exception as exc:  # a fault of ours must not hold up the rows behind this one
            log.exception("notification by %s failed unexpectedly", delivery.channel.value)
            self._failed(store, delivery, f"{type(exc).__name__}: {exc}")
            return
        outbox.delivered(delivery.id, at=self.clock.now(), answer=answer)
        self._cleared((delivery.workflow, delivery.channel))
        log.info("notified %s of run %s (%s) by %s: %s", delivery.workflow, delivery.run_id,
                 delivery.event.value, delivery.channel.value, answer)

    def rule(self, store: Backend, book: NoticeBook, delivery: Delivery) -> NoticeRule | None:
        """The rule a delivery goes by (a cluster's coordinator may have to read it first)."""
        return book.rule(delivery.workflow)

    def _failed(self, store: Backend, delivery: Delivery, error: str) -> None:
        attempts = delivery.attempts + 1
        if attempts >= MAX_ATTEMPTS:
            store.outbox.give_up(delivery.id, answer=error)
        else:
            retry_at = self.clock.now() + timedelta(seconds=backoff(attempts))
            store.outbox.retry_later(delivery.id, answer=error, retry_at=retry_at)
        self._troubled((delivery.workflow, delivery.channel), error, attempts >= MAX_ATTEMPTS)

    def _troubled(self, key: tuple[str, Channel], error: str, gave_up: bool) -> None:
        now = self.clock.monotonic()
        with self.lock:
            trouble = self.troubles.get(key)
            if trouble is None:
                trouble = self.troubles[key] = Trouble(self.clock.now(), 0, error, now)
                log.warning("notification by %s for %s failed: %s (trying again with back-off)",
                            key[1].value, key[0], error)
            elif gave_up or now - trouble.logged_at >= STILL_FAILING_EVERY_S:
                trouble.logged_at = now
                log.warning("notification by %s for %s still failing (%d failures): %s%s",
                            key[1].value, key[0], trouble.failures + 1, error,
                            "; gave one up" if gave_up else "")
            trouble.failures += 1
            trouble.error = error

    def _cleared(self, key: tuple[str, Channel]) -> None:
        with self.lock:
            trouble = self.troubles.pop(key, None)
        if trouble is not None:
            log.info("notification by %s for %s works again (after %d failures)",
                     key[1].value, key[0], trouble.failures)


def _closed(store: Backend | None) -> None:
    if store is not None:
        with contextlib.suppress(Exception):  # it failed already: closing is all that is left
            store.close()
