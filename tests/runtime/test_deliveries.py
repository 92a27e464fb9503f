"""The daemon's delivery thread, one round at a time with a fake clock and a fake channel."""

import logging
import time
from datetime import UTC, datetime

import pytest

from easyflow_cli.core.model import (
    CostPriority,
    Mode,
    ModeReason,
    Outcome,
    PoolName,
    RunState,
    Trigger,
)
from easyflow_cli.core.notify import Channel, Event, NoticeBook, NotifySpec
from easyflow_cli.core.planning import PlannedRun
from easyflow_cli.runtime.daemon.deliveries import (
    BACKOFF_MAX_S,
    MAX_ATTEMPTS,
    STILL_FAILING_EVERY_S,
    Deliveries,
    backoff,
)
from easyflow_cli.runtime.notify_channels import DeliveryFailed
from easyflow_cli.storage.run_queue import RunEnd
from easyflow_cli.storage.store import Store
from tests.runtime.test_daemon import FakeClock

T0 = datetime(2026, 12, 1, 3, 0, tzinfo=UTC)
SPEC = NotifySpec(webhook="http://127.0.0.1:9/hook", command=("page",))


class FakeChannel:
    def __init__(self) -> None:
        self.sent: list[tuple[Channel, str]] = []
        self.failing: set[Channel] = set()

    def __call__(self, channel: Channel, spec: NotifySpec, event: dict) -> str:
        if channel in self.failing:
            raise DeliveryFailed("HTTP 503 Service Unavailable")
        self.sent.append((channel, event["event"]))
        return "HTTP 200" if channel is Channel.WEBHOOK else "exit 0"


@pytest.fixture
def store(tmp_path):
    with Store.open(tmp_path / "home") as opened:
        yield opened


def failed_run(store: Store, book: NoticeBook) -> int:
    store.queue.notices = book
    run_id = store.queue.enqueue([PlannedRun("w", Trigger.MANUAL, Mode.REAL_TIME,
                                             ModeReason.MANUAL, CostPriority.NORMAL, None,
                                             T0)])[0]
    store.queue.claim_ids([run_id], now=T0, pool=PoolName.REAL_TIME, worker="w")
    store.queue.finish([RunEnd(run_id, Outcome(RunState.FAILED, 1), T0, T0)])
    return run_id


def setup(store, tmp_path, spec=SPEC):
    book = NoticeBook.build(NotifySpec(), dict.fromkeys(Mode, 60.0), [("w", spec, 0)])
    clock = FakeClock(T0)
    channel = FakeChannel()
    deliveries = Deliveries(lambda: Store.open(tmp_path / "home"), clock, book, sender=channel)
    return deliveries, clock, channel, book


def test_backoff_doubles_up_to_its_maximum():
    assert [backoff(n) for n in (1, 2, 3)] == [5.0, 10.0, 20.0]
    assert backoff(30) == BACKOFF_MAX_S


def test_a_round_delivers_each_channel_once(store, tmp_path):
    deliveries, clock, channel, book = setup(store, tmp_path)
    failed_run(store, book)
    assert deliveries.round(store) is None  # nothing left: sleep until woken
    assert deliveries.round(store) is None
    assert sorted(channel.sent) == [(Channel.COMMAND, "failure"), (Channel.WEBHOOK, "failure")]
    assert {r["state"] for r in store.outbox.recent(10)} == {"delivered"}


def test_a_failing_channel_backs_off_is_shown_and_logged_rate_limited(store, tmp_path, caplog):
    deliveries, clock, channel, book = setup(store, tmp_path)
    channel.failing = {Channel.WEBHOOK}
    failed_run(store, book)
    with caplog.at_level(logging.WARNING, "easyflow.daemon"):
        assert deliveries.round(store) == 5.0
        assert channel.sent == [(Channel.COMMAND, "failure")]  # the other channel went
        for _ in range(4):
            clock.advance(deliveries.round(store) or 0)
            deliveries.round(store)
    warnings = [r.getMessage() for r in caplog.records]
    assert len(warnings) == 1 and "webhook for w failed: HTTP 503" in warnings[0]
    [trouble] = deliveries.trouble()
    assert (trouble["workflow"], trouble["channel"], trouble["failures"]) == ("w", "webhook", 5)
    clock.advance(STILL_FAILING_EVERY_S)
    deliveries.round(store)
    assert "still failing (6 failures)" in caplog.records[-1].getMessage()
    channel.failing = set()
    clock.advance(BACKOFF_MAX_S)
    deliveries.round(store)
    assert deliveries.trouble() == [] and channel.sent[-1] == (Channel.WEBHOOK, "failure")
    webhook = [r for r in store.outbox.recent(10) if r["channel"] == "webhook"][0]
    assert (webhook["state"], webhook["attempts"]) == ("delivered", 7)


def test_a_delivery_is_given_up_after_its_last_attempt(store, tmp_path):
    deliveries, clock, channel, book = setup(store, tmp_path)
    channel.failing = {Channel.WEBHOOK, Channel.COMMAND}
    failed_run(store, book)
    for _ in range(MAX_ATTEMPTS):
        deliveries.round(store)
        clock.advance(BACKOFF_MAX_S)
    assert {(r["state"], r["attempts"]) for r in store.outbox.recent(10)} == {
        ("failed", MAX_ATTEMPTS)}
    assert deliveries.round(store) is None


def test_a_channel_no_longer_configured_is_given_up(store, tmp_path):
    deliveries, clock, channel, book = setup(store, tmp_path)
    failed_run(store, book)
    deliveries.book = NoticeBook.build(NotifySpec(), dict.fromkeys(Mode, 60.0),
                                       [("w", NotifySpec(command=("page",)), 0)])
    deliveries.round(store)
    states = {r["channel"]: (r["state"], r["answer"]) for r in store.outbox.recent(10)}
    assert states == {"command": ("delivered", "exit 0"),
                      "webhook": ("failed", "no longer configured")}


def test_the_thread_delivers_when_woken_for_new_events_and_stops(store, tmp_path):
    deliveries, clock, channel, book = setup(store, tmp_path)
    deliveries.start()
    try:
        failed_run(store, book)
        deliveries.wake_for(store)
        deadline = time.monotonic() + 10
        while len(channel.sent) < 2 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert len(channel.sent) == 2
    finally:
        deliveries.stop()
    assert not deliveries.thread.is_alive()


def test_late_events_are_written_and_delivered(store, tmp_path):
    spec = NotifySpec(on=(Event.LATE,), webhook="http://127.0.0.1:9/hook", late_after=30.0)
    deliveries, clock, channel, book = setup(store, tmp_path, spec)
    store.queue.enqueue([PlannedRun("w", Trigger.SCHEDULE, Mode.ECO, ModeReason.SCHEDULE,
                                    CostPriority.NORMAL, None, T0)])
    assert deliveries.round(store) == 30.0
    clock.advance(30)
    assert deliveries.round(store) is None
    assert channel.sent == [(Channel.WEBHOOK, "late")]


def test_an_unexpected_error_of_a_channel_is_a_failed_try_not_a_stuck_queue(store, tmp_path):
    deliveries, clock, channel, book = setup(store, tmp_path)

    def broken(channel, spec, event):
        raise ValueError("header value contains a linefeed")

    deliveries.sender = broken
    failed_run(store, book)
    assert deliveries.round(store) == 5.0
    assert {(r["state"], r["attempts"], r["answer"]) for r in store.outbox.recent(10)} == {
        ("pending", 1, "ValueError: header value contains a linefeed")}
