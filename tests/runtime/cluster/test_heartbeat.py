"""The heartbeat of a cluster worker's main process, on a real PostgreSQL with stand-in pool
processes: which of them still hold their runs, a cancel's announcement nudging the one that
holds the run at once, and the runs of one that died settled as the daemon settles them."""

import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime

import pytest

from easyflow_cli.core.model import PoolName, RunState
from easyflow_cli.runtime.cluster.heartbeat import is_live_child
from easyflow_cli.storage.cluster_queue import WorkerInfo
from easyflow_cli.storage.run_queue import RunStart
from tests.cluster_helpers import dispatch_by_hand, queue_runs

WORKER = "node-a:1"
NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
# Stands in for a pool process: it says when it is ready, and when it is nudged.
POOL_PROCESS = """
import signal, sys, time
signal.signal(signal.SIGUSR2, lambda *_: open(sys.argv[1], "w").close())
print("ready", flush=True)
time.sleep(60)
"""


def test_a_child_is_live_until_it_exits_even_before_it_is_reaped():
    child = subprocess.Popen([sys.executable, "-c", "import sys; sys.stdin.read()"],
                             stdin=subprocess.PIPE)
    assert is_live_child(child.pid)
    child.stdin.close()
    os.waitid(os.P_PID, child.pid, os.WEXITED | os.WNOWAIT)  # exited, left a zombie
    assert not is_live_child(child.pid)
    child.wait()
    assert not is_live_child(child.pid)


def test_a_process_that_is_not_our_child_holds_nothing():
    assert not is_live_child(os.getppid())
    assert not is_live_child(os.getpid())


@pytest.fixture
def pg(database_url):
    pytest.importorskip("psycopg", reason="the [cluster] extra is not installed")
    from easyflow_cli.storage.pg_store import PgStore

    with PgStore(database_url) as opened:
        yield opened


def heartbeat(database_url, lease: float = 600.0):
    from easyflow_cli.core.config import load_config
    from easyflow_cli.runtime.cluster.execution import WorkerIdentity
    from easyflow_cli.runtime.cluster.heartbeat import Heartbeat

    info = WorkerInfo(WORKER, "node-a", PoolName.ECO, 2, os.getpid(), NOW, NOW)
    return Heartbeat(database_url, info, WorkerIdentity(WORKER, "node-a", "tok"), lease,
                     load_config(environ={}))


def accepted(pg, count: int, pid: int) -> list[int]:
    from easyflow_cli.storage.pg_workers import PgWorkers

    dispatch = dispatch_by_hand(pg, queue_runs(pg, "w", count, NOW), NOW)
    runs = PgWorkers(pg).accept(dispatch.token, dispatch.run_ids, worker=WORKER, host="node-a",
                                pid=pid, now=NOW)
    return [run.id for run in runs]


def test_an_announced_cancel_nudges_the_process_holding_the_run_before_the_next_beat(
        pg, database_url, tmp_path):
    from easyflow_cli.storage.pg_workers import PgWorkers

    nudged = tmp_path / "nudged"
    child = subprocess.Popen([sys.executable, "-c", POOL_PROCESS, str(nudged)],
                             stdout=subprocess.PIPE)
    try:
        assert child.stdout.readline() == b"ready\n"
        [run_id] = accepted(pg, 1, child.pid)
        with heartbeat(database_url):  # beats every 200 s: only the announcement can be it
            PgWorkers(pg).request_cancel([run_id], now=NOW)
            deadline = time.monotonic() + 10
            while not nudged.exists():
                assert time.monotonic() < deadline, "the pool process was not nudged"
                time.sleep(0.02)
        assert pg.queue.get(run_id).state is RunState.RUNNING  # it stops the run, not the beat
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait()
    stopped = pg.conn.execute("SELECT stopped_at FROM workers WHERE name = %s", (WORKER,))
    assert stopped.fetchone()[0] is not None


def test_the_runs_of_a_dead_pool_process_are_settled_as_a_dead_workers_are(pg, database_url):
    child = subprocess.Popen(["true"])
    child.wait()
    started, waiting = accepted(pg, 2, child.pid)
    pg.queue.start([RunStart(started, NOW, NOW, child.pid)])
    beat = heartbeat(database_url)
    try:
        beat.beat()
    finally:
        beat.close()
    failed, queued = pg.queue.get(started), pg.queue.get(waiting)
    assert failed.state is RunState.FAILED
    assert failed.error == f"worker process {child.pid} on node-a died while running it"
    assert (queued.state, queued.worker, queued.error) == (
        RunState.QUEUED, None, "its worker process died before it started")
