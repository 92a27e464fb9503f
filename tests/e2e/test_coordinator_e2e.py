"""`easyflow daemon` with a cluster, as processes: the first is the active coordinator, the
second a standby that takes over within seconds of a kill -9 of the first, then dispatches
through Redis to the pool of a live worker."""

from __future__ import annotations

import signal
import subprocess
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from easyflow_cli.core.model import CostPriority, Mode, ModeReason, PoolName, Trigger
from easyflow_cli.core.planning import PlannedRun
from tests.conftest import easyflow_command, subprocess_env
from tests.daemon_harness import wait_for

pytest.importorskip("psycopg", reason="the [cluster] extra is not installed")
redis = pytest.importorskip("redis", reason="the [cluster] extra is not installed")
from easyflow_cli.runtime.cluster.engine import queue_name  # noqa: E402
from easyflow_cli.storage.pg_store import PgStore  # noqa: E402

pytestmark = pytest.mark.e2e
TAKEOVER_LIMIT_S = 10.0


class Coordinator:
    """An `easyflow daemon` process and its log."""

    def __init__(self, home: Path, name: str, database_url: str, broker_url: str) -> None:
        self.log = home.parent / f"{name}.log"
        env = subprocess_env(home, EASYFLOW_DATABASE_URL=database_url,
                             EASYFLOW_BROKER_URL=broker_url)
        with self.log.open("w") as log:
            self.process = subprocess.Popen([*easyflow_command(), "daemon"], env=env,
                                            stdin=subprocess.DEVNULL,
                                            stdout=subprocess.DEVNULL, stderr=log)

    def says(self, text: str) -> bool:
        if self.process.poll() is not None and text not in self.log.read_text():
            raise AssertionError(f"exited {self.process.returncode}: {self.log.read_text()}")
        return text in self.log.read_text()

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)


def test_a_standby_takes_over_from_a_killed_coordinator(home, database_url, redis_server):
    broker = redis_server.url(3)
    redis.Redis.from_url(broker).flushdb()  # this test's messages only
    started = []
    try:
        first = Coordinator(home, "first", database_url, broker)
        started.append(first)
        wait_for(lambda: first.says("active on"), timeout=30, message="the first to lead")
        second = Coordinator(home, "second", database_url, broker)
        started.append(second)
        wait_for(lambda: second.says("standby"), timeout=30, message="the second to wait")
        with PgStore(database_url) as pg:
            now = datetime.now(UTC)
            pg.conn.execute(
                "INSERT INTO workers (name, host, pool, concurrency, pid, started_at,"
                " heartbeat_at) VALUES ('b1', 'node-1', %s, 1, 4242, %s, %s)",
                (PoolName.BALANCED.value, now, now))
            first.process.send_signal(signal.SIGKILL)
            killed_at = time.monotonic()
            wait_for(lambda: second.says("taking over"), timeout=30,
                     message="the standby to take over")
            assert time.monotonic() - killed_at < TAKEOVER_LIMIT_S
            [run_id] = pg.queue.enqueue([PlannedRun(
                "w", Trigger.MANUAL, Mode.BALANCED, ModeReason.MANUAL, CostPriority.NORMAL,
                None, now)])
            messages = redis.Redis.from_url(broker)
            # One message, in its pool's queue, sent once the dispatch was committed.
            wait_for(lambda: messages.llen(queue_name(Mode.BALANCED)), timeout=30,
                     message="the new coordinator to dispatch the run")
            assert messages.llen(queue_name(Mode.BALANCED)) == 1
            assert pg.queue.get(run_id).pool is PoolName.BALANCED
        second.process.send_signal(signal.SIGTERM)
        assert second.process.wait(timeout=30) == 0
    finally:
        for coordinator in started:
            coordinator.stop()
