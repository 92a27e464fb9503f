"""The same commands on a cluster: the real `easyflow` command, with EASYFLOW_DATABASE_URL
naming a schema of its own on a real PostgreSQL, and no SQLite database anywhere.

Runs are executed by `FakeNode`, a thread standing in for the coordinator and one worker:
it holds the coordinator's lock, registers a worker, and runs each queued real-time run by
writing what a worker writes (its start, its log chunks, its end), so that what the commands
read and ask of a cluster is tested here, whoever executes the runs."""

import json
import subprocess
import threading
import time
from datetime import UTC, datetime

import pytest

from easyflow_cli.core.model import Mode, Outcome, PoolName, RunState
from easyflow_cli.core.workflow_files import load_workflow_files
from easyflow_cli.storage.cluster_queue import COORDINATOR_LOCK, LOCK_COORDINATOR_SQL
from easyflow_cli.storage.run_queue import Hand, RunEnd, RunStart
from tests.cluster_helpers import dispatch_by_hand, queue_runs
from tests.conftest import easyflow_command, subprocess_env

psycopg = pytest.importorskip("psycopg", reason="the [cluster] extra is not installed")
from easyflow_cli.storage.pg_store import PgStore  # noqa: E402
from easyflow_cli.storage.pg_workers import PgWorkers  # noqa: E402

pytestmark = pytest.mark.e2e

WORKFLOWS = {
    "hello": '[[steps]]\nrun = ["echo", "hello"]\n',
    "bad": '[[steps]]\nrun = ["false"]\n',
    "slow": '[[steps]]\nrun = ["sleep", "60"]\n',
}


def now() -> datetime:
    return datetime.now(UTC)


class FakeNode:
    """A coordinator and a worker named `w1`: `hello` prints two lines and succeeds, `bad`
    prints one and fails (exit 3), `slow` runs until its cancel is asked."""

    def __init__(self, url: str) -> None:
        self.lock = psycopg.connect(url, autocommit=True)
        self.lock.execute(LOCK_COORDINATOR_SQL, (COORDINATOR_LOCK,))
        self.store = PgStore(url)
        self.workers = PgWorkers(self.store)
        self.store.conn.execute(
            "INSERT INTO workers (name, host, pool, concurrency, pid, started_at, heartbeat_at)"
            " VALUES ('w1', 'node-a', 'real-time', 1, 1, now(), now())")
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self.serve, daemon=True)
        self.thread.start()

    def serve(self) -> None:
        while not self.stopped.wait(0.05):
            hands = [Hand("w1", 1)]
            for claimed in self.store.queue.claim(Mode.REAL_TIME, now=now(),
                                                  pool=PoolName.REAL_TIME, hands=hands)[0]:
                self.execute(claimed.id, claimed.workflow)

    def execute(self, run_id: int, workflow: str) -> None:
        run = self.store.queue.get(run_id)
        self.store.queue.start([RunStart(run_id, now(), run.enqueued_at, pid=1)])
        self.workers.append_log(run_id, 0, b"first line\n", now=now())
        outcome = Outcome(RunState.SUCCEEDED, 0)
        if workflow == "bad":
            outcome = Outcome(RunState.FAILED, 3, "exit 3")
        elif workflow == "slow":
            while not self.cancel_asked(run_id) and not self.stopped.wait(0.05):
                pass
            outcome = Outcome(RunState.CANCELLED, None, "cancelled by user")
        else:
            time.sleep(0.3)  # the follower sees the run running, then its second line
            self.workers.append_log(run_id, 1, b"second line\n", now=now())
        self.store.queue.finish([RunEnd.of(self.store.queue.get(run_id), outcome, now())])

    def cancel_asked(self, run_id: int) -> bool:
        row = self.store.conn.execute("SELECT cancel_requested_at FROM runs WHERE id = %s",
                                      (run_id,)).fetchone()
        return row[0] is not None

    def close(self) -> None:
        self.stopped.set()
        self.thread.join(10)
        self.store.close()
        self.lock.close()


@pytest.fixture
def cluster(database_url, home, tmp_path):
    """Runs `easyflow` on the cluster; the workflow files are written under tmp_path."""
    env = subprocess_env(home, EASYFLOW_DATABASE_URL=database_url)
    files = tmp_path / "workflows"
    files.mkdir()
    for name, body in WORKFLOWS.items():
        (files / f"{name}.toml").write_text(f'name = "{name}"\n{body}')
    with PgStore(database_url) as store:  # as `workflow add` does (tested below): a call saved
        store.save_workflows(load_workflow_files([files]), now())

    def easyflow(*args: str, timeout: float = 60) -> subprocess.CompletedProcess:
        return subprocess.run([*easyflow_command(), *args], env=env, capture_output=True,
                              text=True, timeout=timeout)

    easyflow.files = files
    easyflow.url = database_url
    return easyflow


@pytest.fixture
def node(cluster):
    started = FakeNode(cluster.url)
    yield started
    started.close()


def test_workflows_and_schedules_live_in_the_cluster_database(cluster, home):
    added = cluster("workflow", "add", str(cluster.files / "hello.toml"))
    assert added.returncode == 0 and "updated hello (1 step" in added.stderr
    listed = json.loads(cluster("workflow", "list", "--json").stdout)
    assert [row["name"] for row in listed] == ["bad", "hello", "slow"]
    assert "run = [" in cluster("workflow", "show", "hello").stdout
    assert cluster("workflow", "disable", "bad").returncode == 0
    refused = cluster("run", "bad", "--now")
    assert refused.returncode == 2 and "is disabled" in refused.stderr
    assert cluster("workflow", "enable", "bad").returncode == 0
    exported = cluster("workflow", "export", "hello")
    assert exported.returncode == 0 and 'name = "hello"' in exported.stdout

    schedule = cluster("schedule", "add", "hello", "--every", "1h")
    assert schedule.returncode == 0, schedule.stderr
    schedule_id = schedule.stdout.strip()
    assert cluster("schedule", "pause", schedule_id).returncode == 0
    rows = json.loads(cluster("schedule", "list", "--json").stdout)
    assert [(row["id"], row["paused"]) for row in rows] == [(int(schedule_id), True)]
    assert cluster("schedule", "resume", schedule_id).returncode == 0
    assert cluster("schedule", "set", schedule_id, "--every", "2h").returncode == 0
    fires = json.loads(cluster("schedule", "next", "hello", "-n", "2", "--json").stdout)
    assert len(fires) == 2
    assert cluster("schedule", "remove", schedule_id).returncode == 0
    assert cluster("workflow", "remove", "slow").returncode == 0
    assert [r["name"] for r in json.loads(cluster("workflow", "list", "--json").stdout)] == [
        "bad", "hello"]
    assert not (home / "easyflow.db").exists()  # nothing went to SQLite


def test_run_now_follows_the_run_its_worker_executes(cluster, node):
    done = cluster("run", "hello", "--now")
    assert done.returncode == 0, done.stderr
    assert done.stdout == "first line\nsecond line\n"
    run_id = json.loads(cluster("runs", "list", "--json").stdout)[0]["id"]
    assert cluster("logs", run_id.__str__()).stdout == "first line\nsecond line\n"
    assert cluster("logs", str(run_id), "--tail", "1").stdout == "second line\n"
    followed = cluster("logs", "-f", str(run_id))
    assert (followed.returncode, followed.stdout) == (0, "first line\nsecond line\n")

    failed = cluster("run", "bad", "--now", "--json")
    assert failed.returncode == 1
    assert (json.loads(failed.stdout)["state"], json.loads(failed.stdout)["exit_code"]) == (
        "failed", 3)
    shown = json.loads(cluster("runs", "show", str(run_id), "--json").stdout)
    assert shown["state"] == "succeeded" and shown["attempts"][0]["id"] == run_id
    retried = cluster("runs", "retry", str(run_id), "--json")
    assert retried.returncode == 0 and json.loads(retried.stdout)["rerun_of"] == run_id


def test_run_no_wait_and_count_then_wait_for_the_coordinator(cluster, node):
    queued = cluster("run", "hello", "--now", "--no-wait")
    assert queued.returncode == 0, queued.stderr
    run_id = int(queued.stdout)
    many = cluster("run", "hello", "--now", "--count", "3")
    assert many.returncode == 0, many.stderr
    assert many.stderr.count(" succeeded in ") == 3
    followed = cluster("logs", "-f", str(run_id))
    assert followed.returncode == 0 and "second line" in followed.stdout


def test_a_run_waits_for_a_coordinator_and_says_so(cluster):
    waiting = cluster("run", "hello", "--now")
    assert waiting.returncode == 1
    assert "no coordinator is running: run 1 waits in the queue until one starts" in (
        waiting.stderr)
    assert waiting.stdout.strip() == "1"
    several = cluster("run", "hello", "bad", "--now", "--no-wait")
    assert several.returncode == 1 and "runs 2-3 wait in the queue" in several.stderr
    status = cluster("status", "--json")
    assert status.returncode == 1
    document = json.loads(status.stdout)
    assert (document["coordinator"], document["state"], document["workers"]) == (
        None, "stopped", [])
    assert document["queue"]["real-time"] == 3
    cancelled = cluster("runs", "cancel", "1")
    assert (cancelled.returncode, cancelled.stderr.strip()) == (0, "run 1: cancelled")
    assert "no log yet" in cluster("logs", "2").stderr


def test_cancel_ends_a_run_dispatched_that_no_worker_accepted_for_good(cluster):
    with PgStore(cluster.url) as store:
        [run_id] = queue_runs(store, "hello", 1, now())
        dispatch = dispatch_by_hand(store, [run_id], now())
        cancelled = cluster("runs", "cancel", str(run_id))
        assert (cancelled.returncode, cancelled.stderr.strip()) == (0, f"run {run_id}: cancelled")
        assert PgWorkers(store).accept(dispatch.token, [run_id], worker="w1", host="node-a",
                                       pid=1, now=now()) == []  # its message, delivered late


def test_cancel_reaches_the_worker_of_a_running_run(cluster, node):
    run_id = cluster("run", "slow", "--now", "--no-wait").stdout.strip()
    deadline = time.monotonic() + 30
    while json.loads(cluster("runs", "show", run_id, "--json").stdout)["state"] != "running":
        assert time.monotonic() < deadline
        time.sleep(0.1)
    stopping = cluster("runs", "cancel", run_id)
    assert (stopping.returncode, stopping.stderr.strip()) == (0, f"run {run_id}: stopping")
    followed = cluster("logs", "-f", run_id)
    assert followed.returncode == 1 and "cancelled" in followed.stderr
    assert cluster("runs", "cancel", run_id).returncode == 2  # it ended


def test_status_shows_the_coordinator_and_the_workers(cluster, node):
    run_id = cluster("run", "slow", "--now", "--no-wait").stdout.strip()
    deadline = time.monotonic() + 30
    while True:
        status = cluster("status", "--json")
        document = json.loads(status.stdout)
        if document["running"] or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert status.returncode == 0
    assert document["coordinator"]["pid"] == node.lock.info.backend_pid
    [worker] = document["workers"]
    assert (worker["name"], worker["host"], worker["pool"], worker["concurrency"],
            worker["running"], worker["alive"]) == ("w1", "node-a", "real-time", 1, 1, True)
    assert document["pools"] == {"real-time": {"size": 1, "busy": 1}}
    assert [run["id"] for run in document["running"]] == [int(run_id)]
    text = cluster("status").stdout
    assert "coordinator running" in text and "node-a" in text
    cluster("runs", "cancel", run_id)


def test_prune_removes_runs_and_their_log_chunks(cluster, node):
    assert cluster("run", "hello", "--now").returncode == 0
    node.store.conn.execute("UPDATE runs SET finished_at = finished_at - interval '2 hours'")
    pruned = cluster("runs", "prune", "--older-than", "1h", "--json")
    assert pruned.returncode == 0, pruned.stderr
    assert json.loads(pruned.stdout)["runs"] == 1
    assert json.loads(cluster("runs", "list", "--json").stdout) == []
    rows = node.store.conn.execute("SELECT count(*) FROM run_log_chunks").fetchone()
    assert rows[0] == 0
