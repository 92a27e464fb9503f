"""The active coordinator's duties in-process, on a real PostgreSQL with a fake clock: what
workers' runs and its own settlements wrote to the outbox delivered by its thread once the
coordinator hears of it, its metrics read from the database, and all of it stopped with it."""

import time
from datetime import UTC, datetime

import pytest
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from easyflow_cli.core.model import Outcome, PoolName, RunState
from easyflow_cli.core.notify import Channel
from easyflow_cli.core.spec import parse_workflow_text
from easyflow_cli.storage.run_queue import RunEnd
from tests.runtime.test_daemon import FakeClock
from tests.runtime.test_deliveries import FakeChannel

pytest.importorskip("psycopg", reason="the [cluster] extra is not installed")
pytest.importorskip("celery", reason="the [cluster] extra is not installed")
from easyflow_cli.core.config import load_config  # noqa: E402
from easyflow_cli.reporting.metrics import EasyflowCollector, cluster_live, registry_of  # noqa: E402
from easyflow_cli.runtime.cluster.coordinator import Coordinator  # noqa: E402
from easyflow_cli.runtime.cluster.execution import notice_book  # noqa: E402
from easyflow_cli.storage.pg_leadership import Leadership  # noqa: E402
from easyflow_cli.storage.pg_store import PgStore  # noqa: E402
from tests.runtime.cluster.test_coordinator import FakeWorker, enqueue  # noqa: E402

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
CONFIG = '[cluster]\ndatabase_url = "{url}"\nlease = "30s"\ndispatch_timeout = "20s"\n'


@pytest.fixture
def clock():
    return FakeClock(NOW)


@pytest.fixture
def pg(database_url):
    with PgStore(database_url) as opened:
        text = 'name = "w"\n[[steps]]\nrun = ["true"]\n[notify]\ncommand = ["page"]\n'
        opened.save_workflows([parse_workflow_text(text)], NOW)
        yield opened


@pytest.fixture
def channel():
    return FakeChannel()


@pytest.fixture
def coordinator(database_url, pg, tmp_path, clock, channel):
    path = tmp_path / "easyflow.toml"
    path.write_text(CONFIG.format(url=database_url))
    sent: list = []
    active = Coordinator(str(path), clock=clock, send=sent.append)
    with Leadership(database_url) as leadership:
        assert leadership.try_take()
        active.start(leadership)
        active.duties.deliveries.sender = channel
        yield active
        active.shutdown()
        active.selector.close()


def tick_until(coordinator, done, timeout: float = 20.0) -> None:
    """Ticks (each waits for the selector a moment) until `done()`: the thread's work is real."""
    deadline = time.monotonic() + timeout
    while not done() and time.monotonic() < deadline:
        coordinator.tick(0.05)
    assert done()


def test_a_run_a_worker_ended_is_notified_once_the_coordinator_hears_of_it(coordinator, pg,
                                                                           clock, channel):
    worker = FakeWorker(pg, "b1", PoolName.BALANCED, 1, clock)
    [run_id] = enqueue(pg, 1)
    coordinator.tick(0)
    token = pg.conn.execute("SELECT dispatch_token FROM runs WHERE id = %s",
                            (run_id,)).fetchone()[0]
    worker.accept(token)
    worker.start(run_id)
    run = pg.queue.get(run_id)
    # A worker writes the events of the run it ran, by its workflow's rule.
    pg.queue.notices = notice_book(coordinator.config, pg.all_workflows())
    pg.queue.finish([RunEnd.of(run, Outcome(RunState.FAILED, exit_code=1), clock.now())])
    tick_until(coordinator, lambda: channel.sent)
    assert channel.sent == [(Channel.COMMAND, "failure")]
    coordinator.tick(0.2)
    assert channel.sent == [(Channel.COMMAND, "failure")]


def test_a_silent_workers_run_the_coordinator_fails_is_notified(coordinator, pg, clock,
                                                                channel):
    silent = FakeWorker(pg, "b1", PoolName.BALANCED, 1, clock)
    [run_id] = enqueue(pg, 1)
    coordinator.tick(0)
    token = pg.conn.execute("SELECT dispatch_token FROM runs WHERE id = %s",
                            (run_id,)).fetchone()[0]
    silent.accept(token)
    silent.start(run_id)
    clock.advance(31)  # no heartbeat for longer than the lease: settled failed by the leases
    tick_until(coordinator, lambda: channel.sent)
    assert channel.sent == [(Channel.COMMAND, "failure")]


def samples(registry) -> dict[tuple, float]:
    text = generate_latest(registry).decode()
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def test_the_coordinators_metrics_come_from_the_database(coordinator, pg, clock):
    worker = FakeWorker(pg, "b1", PoolName.BALANCED, 2, clock)
    [run_id, other] = enqueue(pg, 2)
    coordinator.tick(0)
    for token, in pg.conn.execute("SELECT dispatch_token FROM runs").fetchall():
        worker.accept(token)
    worker.start(run_id)
    worker.start(other)
    worker.finish(run_id)
    found = samples(coordinator.duties.metrics.registry)
    assert found[("easyflow_daemon_up", ())] == 1
    assert found[("easyflow_runs_total", (("mode", "balanced"), ("state", "succeeded"),
                                          ("workflow", "w")))] == 1
    # The second run holds one of its worker's slots; the first one's is free again.
    assert found[("easyflow_pool_workers", (("pool", "balanced"), ("state", "busy")))] == 1
    assert found[("easyflow_pool_workers", (("pool", "balanced"), ("state", "idle")))] == 1


def test_easyflow_metrics_on_a_cluster_says_whether_a_coordinator_runs(database_url, pg,
                                                                        write):
    config = load_config(str(write("easyflow.toml", "")))
    collector = EasyflowCollector(lambda: PgStore(database_url), lambda: config,
                                  cluster_live(30.0))
    assert samples(registry_of(collector))[("easyflow_daemon_up", ())] == 0
    with Leadership(database_url) as leadership:
        assert leadership.try_take()
        found = samples(registry_of(collector))
    assert found[("easyflow_daemon_up", ())] == 1
    assert found[("easyflow_queue_depth", (("mode", "balanced"),))] == 0


def test_the_duties_stop_with_the_coordinator(database_url, pg, tmp_path, clock):
    path = tmp_path / "easyflow.toml"
    path.write_text(CONFIG.format(url=database_url))
    active = Coordinator(str(path), clock=clock, send=[].append)
    with Leadership(database_url) as leadership:
        assert leadership.try_take()
        active.start(leadership)
        threads = [active.duties.deliveries.thread, active.duties.pruning.thread]
        assert all(thread.is_alive() for thread in threads)
        active.shutdown()
        active.selector.close()
    assert not any(thread.is_alive() for thread in threads)
