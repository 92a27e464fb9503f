"""The notification outbox's interface: events waiting to be delivered, one row per channel.

    run ends (RunQueue.finish: same transaction) ─┐
    a run not ended is late (sweep_late) ─────────┴─▶ pending ──delivered──▶ delivered
                                                        │ ▲
                                                        └─┴─retry_later─ (tried again)
                                                        └──give_up─────▶ failed

A row is marked delivered only after its channel accepted it: a crash between the two sends
it again, with the same `event_id`, by which a receiver can tell the repeat.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from easyflow_cli.core.model import Run
from easyflow_cli.core.notify import Channel, Event, NoticeBook, NoticeRule
from easyflow_cli.core.notify_events import late_at


@dataclass(frozen=True)
class Delivery:
    """One event to deliver through one channel."""

    id: int
    event_id: str
    event: Event
    workflow: str
    run_id: int | None
    channel: Channel
    payload: dict[str, Any]
    attempts: int  # tries so far


class Outbox(Protocol):
    def due(self, now: datetime, limit: int) -> list[Delivery]:
        """Pending deliveries whose next try has come, oldest first."""
        ...

    def next_due_at(self) -> datetime | None:
        """When the earliest pending delivery is to be tried (a new row: when it was written)."""
        ...

    def delivered(self, delivery_id: int, *, at: datetime, answer: str) -> None:
        """pending → delivered; sets `delivered_at`, `answer`, `attempts` + 1."""
        ...

    def retry_later(self, delivery_id: int, *, answer: str, retry_at: datetime) -> None:
        """Stays pending; sets `answer` (the failure), `next_try_at`, `attempts` + 1."""
        ...

    def give_up(self, delivery_id: int, *, answer: str) -> None:
        """pending → failed; sets `answer`, `attempts` + 1."""
        ...

    def sweep_late(self, book: NoticeBook, now: datetime) -> tuple[int, datetime | None]:
        """Write a `late` event for each run of a workflow watching for it that has become
        late (`notify_events.late_at`), once per run; how many, and when the next one may."""
        ...

    def pending_count(self) -> int:
        ...

    def failed_by_channel(self) -> dict[str, int]:
        """Deliveries given up after their last try, by channel (they are never removed, so
        each count only grows: the metrics' `easyflow_notifications_failed_total`)."""
        ...

    def recent(self, limit: int) -> list[dict[str, Any]]:
        """The newest rows, newest first, as `notifications list` shows them."""
        ...


# A run that has become late, the rule watching it, and the wait after which it was.
LateRun = tuple[Run, NoticeRule, float]


def late_runs(book: NoticeBook, runs: list[Run], told: set[int], now: datetime
              ) -> tuple[list[LateRun], datetime | None]:
    """Of runs that could become late (`RunQueue.awaited`), those that are, not `told` yet;
    and when the next of the others will be (every backend's `sweep_late`)."""
    due: list[LateRun] = []
    upcoming = []
    for run in runs:
        rule = book.rule(run.workflow)
        if run.id in told or rule is None:
            continue
        late_after = book.late_after(rule, run.mode)
        moment = late_at(run, late_after)
        if moment is not None and moment <= now:
            due.append((run, rule, late_after))
        elif moment is not None:
            upcoming.append(moment)
    return due, min(upcoming, default=None)
