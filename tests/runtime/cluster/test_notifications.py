"""The coordinator's notification delivery on a real PostgreSQL, a round at a time with a fake
clock and a fake channel: a worker's run notified once, retried with back-off, never sent twice
by a second coordinator, and announced to the coordinator as its end commits."""

import time
from datetime import UTC, datetime

import pytest

from easyflow_cli.core.config import load_config
from easyflow_cli.core.model import (
    CostPriority,
    Mode,
    ModeReason,
    Outcome,
    PoolName,
    RunState,
    Trigger,
)
from easyflow_cli.core.notify import Channel
from easyflow_cli.core.planning import PlannedRun
from easyflow_cli.core.spec import parse_workflow_text
from easyflow_cli.runtime.daemon import deliveries as deliveries_module
from easyflow_cli.runtime.daemon.deliveries import backoff
from easyflow_cli.storage.run_queue import RunEnd
from tests.runtime.test_daemon import FakeClock
from tests.runtime.test_deliveries import FakeChannel

pytest.importorskip("psycopg", reason="the [cluster] extra is not installed")
from easyflow_cli.runtime.cluster.execution import notice_book  # noqa: E402
from easyflow_cli.runtime.cluster.notifications import ClusterDeliveries  # noqa: E402
from easyflow_cli.storage.pg_deliveries import EventWakeups, OutboxHeld, open_outbox  # noqa: E402
from easyflow_cli.storage.pg_store import PgStore  # noqa: E402

T0 = datetime(2026, 12, 1, 3, 0, tzinfo=UTC)
NOTIFY = '[notify]\nwebhook = "http://127.0.0.1:9/hook"\ncommand = ["page"]\n'


def workflow(name: str, notify: str = NOTIFY):
    return parse_workflow_text(f'name = "{name}"\n[[steps]]\nrun = ["false"]\n{notify}')


@pytest.fixture
def pg(database_url):
    with PgStore(database_url) as opened:
        opened.save_workflows([workflow("w"), workflow("v")], T0)
        yield opened


@pytest.fixture
def config(write):
    return load_config(str(write("easyflow.toml", "")))


def failed_run(pg, config, name: str = "w") -> int:
    """A run ended on a worker: its events written with its end, by the worker's own book."""
    pg.queue.notices = notice_book(config, [pg.get_workflow(name)])
    [run_id] = pg.queue.enqueue([PlannedRun(name, Trigger.MANUAL, Mode.REAL_TIME,
                                            ModeReason.MANUAL, CostPriority.NORMAL, None, T0)])
    pg.queue.claim_ids([run_id], now=T0, pool=PoolName.REAL_TIME, worker="w")
    pg.queue.finish([RunEnd(run_id, Outcome(RunState.FAILED, 1), T0, T0)])
    return run_id


def deliveries_of(database_url, pg, config) -> tuple[ClusterDeliveries, FakeClock, FakeChannel]:
    clock, channel = FakeClock(T0), FakeChannel()
    book = notice_book(config, pg.all_workflows())
    deliveries = ClusterDeliveries(lambda: open_outbox(database_url), clock, book, config,
                                   sender=channel)
    return deliveries, clock, channel


def states(pg) -> list[tuple[str, str]]:
    return pg.conn.execute("SELECT channel, state FROM notifications ORDER BY id").fetchall()


def test_a_workers_failed_run_is_delivered_once_by_each_channel(database_url, pg, config):
    failed_run(pg, config)
    deliveries, clock, channel = deliveries_of(database_url, pg, config)
    with open_outbox(database_url) as outbox:
        assert deliveries.round(outbox) is None
        assert deliveries.round(outbox) is None
    assert sorted(channel.sent) == [(Channel.COMMAND, "failure"), (Channel.WEBHOOK, "failure")]
    assert states(pg) == [("command", "delivered"), ("webhook", "delivered")]


def test_a_failing_channel_is_tried_again_after_its_back_off(database_url, pg, config):
    failed_run(pg, config)
    deliveries, clock, channel = deliveries_of(database_url, pg, config)
    channel.failing = {Channel.WEBHOOK}
    with open_outbox(database_url) as outbox:
        assert deliveries.round(outbox) == backoff(1)
        channel.failing = set()
        clock.advance(backoff(1) - 1)
        deliveries.round(outbox)
        assert channel.sent == [(Channel.COMMAND, "failure")]  # not yet
        clock.advance(1)
        assert deliveries.round(outbox) is None
    assert channel.sent == [(Channel.COMMAND, "failure"), (Channel.WEBHOOK, "failure")]
    assert [t["workflow"] for t in deliveries.trouble()] == []  # it works again


def test_a_second_coordinator_delivers_nothing_twice_and_nothing_while_the_first_holds_on(
        database_url, pg, config):
    failed_run(pg, config)
    first, _, first_channel = deliveries_of(database_url, pg, config)
    second, _, second_channel = deliveries_of(database_url, pg, config)
    with open_outbox(database_url) as outbox:
        first.round(outbox)
        failed_run(pg, config, "v")  # ended while the first still holds the outbox
        with pytest.raises(OutboxHeld):
            open_outbox(database_url)
    with open_outbox(database_url) as outbox:  # the first one's connection ended: take over
        second.round(outbox)
    assert len(first_channel.sent) == len(second_channel.sent) == 2
    assert [row[1] for row in states(pg)] == ["delivered"] * 4


def test_a_workflow_added_after_the_book_was_read_is_notified(database_url, pg, config):
    deliveries, clock, channel = deliveries_of(database_url, pg, config)
    pg.save_workflows([workflow("later", '[notify]\ncommand = ["page"]\n')], T0)
    failed_run(pg, config, "later")
    with open_outbox(database_url) as outbox:
        deliveries.round(outbox)
    assert channel.sent == [(Channel.COMMAND, "failure")]


def test_an_end_that_wrote_events_is_announced_at_commit(database_url, pg, config):
    pg.save_workflows([workflow("quiet", "")], T0)
    with EventWakeups(database_url) as events:
        failed_run(pg, config, "quiet")  # no [notify]: no events
        assert not events.arrived()
        failed_run(pg, config)
        assert events.arrived()
        assert not events.arrived()


def test_the_thread_connects_again_when_the_server_ended_its_connection(database_url, pg,
                                                                        config, monkeypatch):
    monkeypatch.setattr(deliveries_module, "DB_TROUBLE_WAIT_S", 0.05)
    deliveries, clock, channel = deliveries_of(database_url, pg, config)
    opened: list[PgStore] = []

    def open_and_keep() -> PgStore:
        opened.append(open_outbox(database_url))
        return opened[-1]

    deliveries.open_store = open_and_keep
    deliveries.start()
    try:
        wait_until(lambda: opened)
        pg.conn.execute("SELECT pg_terminate_backend(%s)", (opened[0].conn.info.backend_pid,))
        failed_run(pg, config)
        deliveries.wake()
        wait_until(lambda: len(channel.sent) == 2)
    finally:
        deliveries.stop()
    assert len(opened) == 2


def wait_until(done, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not done() and time.monotonic() < deadline:
        time.sleep(0.02)
    assert done()
