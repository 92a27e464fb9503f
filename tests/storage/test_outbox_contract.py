"""The outbox's contract: rows go pending → delivered once, or wait with their tries counted,
or are given up; late runs are written once each. Every backend passes it."""

from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta

import pytest

from easyflow_cli.core.model import CostPriority, Mode, ModeReason, PoolName, Trigger
from easyflow_cli.core.notify import Channel, Event, NoticeBook, NotifySpec
from easyflow_cli.core.planning import PlannedRun
from easyflow_cli.storage.store import Store

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
LATE = NotifySpec(on=(Event.LATE,), webhook="http://127.0.0.1:9/hook")


@pytest.fixture(params=["sqlite", "postgresql"])
def open_store(request, tmp_path) -> Iterator[Callable[[], Store]]:
    """Opens a new connection to one backend's database (one param per backend)."""
    opened: list = []

    def open_one() -> Store:
        if request.param == "postgresql":
            from easyflow_cli.storage.pg_store import PgStore

            opened.append(PgStore(url))
        else:
            opened.append(Store.open(tmp_path / "home"))
        return opened[-1]

    if request.param == "postgresql":
        url = request.getfixturevalue("database_url")
    yield open_one
    for store in opened:
        store.close()


@pytest.fixture
def store(open_store) -> Store:
    return open_store()


def book(spec: NotifySpec = LATE, retries: int = 0) -> NoticeBook:
    return NoticeBook.build(NotifySpec(), dict.fromkeys(Mode, 300.0), [("a", spec, retries)])


def scheduled(store: Store, *, at: datetime = NOW, trigger: Trigger = Trigger.SCHEDULE,
              deadline: datetime | None = None, workflow: str = "a") -> int:
    return store.queue.enqueue([PlannedRun(workflow, trigger, Mode.ECO, ModeReason.SCHEDULE,
                                           CostPriority.NORMAL, deadline, at)])[0]


def test_a_scheduled_run_still_queued_is_late_once_after_late_after(store):
    run_id = scheduled(store)
    scheduled(store, trigger=Trigger.MANUAL)  # not scheduled, no deadline: never late
    scheduled(store, workflow="b")  # not watched
    outbox = store.outbox
    assert outbox.sweep_late(book(), NOW + timedelta(seconds=299)) == (
        0, NOW + timedelta(seconds=300))
    assert outbox.sweep_late(book(), NOW + timedelta(seconds=300)) == (1, None)
    assert outbox.sweep_late(book(), NOW + timedelta(seconds=900)) == (0, None)
    [late] = outbox.due(NOW + timedelta(seconds=300), 10)
    assert (late.event, late.run_id, late.channel, late.attempts) == (Event.LATE, run_id,
                                                                      Channel.WEBHOOK, 0)
    assert late.payload["state"] == "queued" and late.payload["event_id"] == late.event_id


def test_a_running_run_past_its_deadline_is_late(store):
    run_id = scheduled(store, trigger=Trigger.MANUAL, deadline=NOW + timedelta(minutes=1))
    store.queue.claim_ids([run_id], now=NOW, pool=PoolName.ECO, worker="w")
    assert store.outbox.sweep_late(book(), NOW + timedelta(minutes=2))[0] == 1
    assert "past its deadline" in store.outbox.recent(1)[0]["summary"]


def test_delivered_once_and_only_from_pending(store):
    scheduled(store)
    store.outbox.sweep_late(book(), NOW + timedelta(hours=1))
    [row] = store.outbox.due(NOW + timedelta(hours=1), 10)
    store.outbox.delivered(row.id, at=NOW + timedelta(hours=1), answer="HTTP 200")
    store.outbox.delivered(row.id, at=NOW + timedelta(hours=2), answer="HTTP 200")
    store.outbox.retry_later(row.id, answer="late", retry_at=NOW)
    [listed] = store.outbox.recent(10)
    assert (listed["state"], listed["attempts"], listed["answer"]) == ("delivered", 1,
                                                                       "HTTP 200")
    assert listed["delivered_at"] == "2026-11-25T13:00:00.000000Z"
    assert store.outbox.due(NOW + timedelta(days=1), 10) == []
    assert store.outbox.next_due_at() is None and store.outbox.pending_count() == 0


def test_a_failed_try_waits_for_its_retry_time_then_can_be_given_up(store):
    scheduled(store)
    store.outbox.sweep_late(book(), NOW + timedelta(hours=1))
    [row] = store.outbox.due(NOW + timedelta(hours=1), 10)
    retry_at = NOW + timedelta(hours=1, seconds=5)
    store.outbox.retry_later(row.id, answer="HTTP 503", retry_at=retry_at)
    assert store.outbox.due(retry_at - timedelta(seconds=1), 10) == []
    assert store.outbox.next_due_at() == retry_at and store.outbox.pending_count() == 1
    [again] = store.outbox.due(retry_at, 10)
    assert again.attempts == 1 and again.event_id == row.event_id
    store.outbox.give_up(row.id, answer="HTTP 503")
    [listed] = store.outbox.recent(10)
    assert (listed["state"], listed["attempts"]) == ("failed", 2)
    assert store.outbox.due(NOW + timedelta(days=1), 10) == []


def test_a_second_connection_sees_what_the_first_wrote(store, open_store):
    scheduled(store)
    store.outbox.sweep_late(book(), NOW + timedelta(hours=1))
    other = open_store()
    [row] = other.outbox.due(NOW + timedelta(hours=1), 10)
    other.outbox.delivered(row.id, at=NOW, answer="ok")
    assert store.outbox.recent(1)[0]["state"] == "delivered"
