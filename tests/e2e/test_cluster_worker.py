"""A real `easyflow worker` process on a real PostgreSQL and Redis, fed dispatches made by hand
(as the coordinator will make them): runs executed and recorded with their logs, stale messages
dropped, cancels across machines, and a killed pool process's run settled, never run twice.

One worker serves every test of this module (it takes a few seconds to start); each test has
runs of its own."""

from __future__ import annotations

import itertools
import os
import signal
import subprocess
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from easyflow_cli.core.model import Mode
from easyflow_cli.core.workflow_files import parse_workflow_file
from easyflow_cli.storage.cluster_queue import Dispatch
from tests.cluster_helpers import dispatch_by_hand, queue_runs
from tests.conftest import easyflow_command, subprocess_env

pytest.importorskip("celery", reason="the [cluster] extra is not installed")
psycopg = pytest.importorskip("psycopg", reason="the [cluster] extra is not installed")
from easyflow_cli.runtime.cluster.engine import make_app, send  # noqa: E402
from easyflow_cli.storage.pg_store import PgStore  # noqa: E402
from easyflow_cli.storage.pg_workers import PgWorkers  # noqa: E402

WORKER = "test-node:1"
NOTIFY = '[notify]\ncommand = ["true"]\n'
SECRET = "s3cret-value-42"
TIMEOUT_S = 90.0  # generous: the box may be busy with other tests
_workflows = itertools.count(1)


class Cluster:
    """The worker process, the database it records into, and the broker it reads."""

    def __init__(self, store: PgStore, broker_url: str, log: Path, root: Path) -> None:
        self.store = store
        self.app = make_app(broker_url)
        self.log = log
        self.root = root

    def workflow(self, steps: str, retries: int = 0) -> str:
        name = f"w{next(_workflows)}"
        path = self.root / f"{name}.toml"
        path.write_text(f'name = "{name}"\nretries = {retries}\n{steps}')
        self.store.save_workflows([parse_workflow_file(path)], datetime.now(UTC))
        return name

    def dispatch(self, workflow: str, count: int = 1) -> Dispatch:
        now = datetime.now(UTC)
        run_ids = queue_runs(self.store, workflow, count, now, Mode.ECO)
        return dispatch_by_hand(self.store, run_ids, now, Mode.ECO)

    def run(self, run_id: int) -> dict:
        with self.store.conn.cursor(row_factory=psycopg.rows.dict_row) as cursor:
            return cursor.execute("SELECT * FROM runs WHERE id = %s", (run_id,)).fetchone()

    def finished(self, run_id: int) -> dict:
        wait_for(lambda: self.run(run_id)["state"] not in ("queued", "running"),
                 f"run {run_id} to end")
        return self.run(run_id)

    def events(self, run_id: int) -> list[str]:
        return [row[0] for row in self.store.conn.execute(
            "SELECT event FROM notifications WHERE run_id = %s", (run_id,))]

    def dropped(self, dispatch: Dispatch) -> bool:
        return f"dispatch {dispatch.token} of runs" in self.log.read_text(errors="replace")


def running(pid: int) -> bool:
    """Is the process there and not a zombie (a killed orphan waits for its new parent)?"""
    try:
        stat = Path(f"/proc/{pid}/stat").read_bytes()
    except OSError:
        return False
    return stat.rsplit(b")", 1)[1].split()[0] != b"Z"


def wait_for(condition: Callable[[], object], what: str) -> None:
    deadline = time.monotonic() + TIMEOUT_S
    while not condition():
        assert time.monotonic() < deadline, f"waited {TIMEOUT_S:.0f} s for {what}"
        time.sleep(0.05)


@pytest.fixture(scope="module")
def cluster(postgres_server, redis_server, tmp_path_factory):
    schema = f"worker{os.getpid()}"
    with psycopg.connect(postgres_server.url(), autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
    url = postgres_server.url(options=f"-csearch_path%3D{schema}")
    root = tmp_path_factory.mktemp("cluster")
    config = root / "easyflow.toml"
    config.write_text('[cluster]\nlease = "3s"\n[costs]\ntariff = "tariff.csv"\n')
    day = datetime.now(UTC).date()
    (root / "tariff.csv").write_text(
        f"start,end,value\n{day - timedelta(days=1)}T00:00:00Z,{day + timedelta(days=2)}T00:00:00Z,"
        "0.25\n")
    credentials = root / "credentials"
    credentials.mkdir()
    (credentials / "api-token").write_text(SECRET)
    (credentials / "api-token").chmod(0o600)
    env = subprocess_env(root / "home", EASYFLOW_CONFIG=str(config), EASYFLOW_DATABASE_URL=url,
                         EASYFLOW_BROKER_URL=redis_server.url(1),
                         CREDENTIALS_DIRECTORY=str(credentials))
    log = root / "worker.log"
    with PgStore(url) as store, open(log, "wb") as output:
        worker = subprocess.Popen(
            [*easyflow_command(), "worker", "--pool", "eco", "--concurrency", "2",
             "--name", WORKER], env=env, stdout=output, stderr=subprocess.STDOUT)
        try:
            wait_for(lambda: store.conn.execute(
                "SELECT 1 FROM workers WHERE name = %s", (WORKER,)).fetchone(), "the worker")
            yield Cluster(store, redis_server.url(1), log, root)
        finally:
            worker.send_signal(signal.SIGTERM)
            try:
                worker.wait(TIMEOUT_S)
            except subprocess.TimeoutExpired:
                worker.kill()
                worker.wait()
        stopped = store.conn.execute("SELECT stopped_at FROM workers WHERE name = %s",
                                     (WORKER,)).fetchone()
    assert worker.returncode == 0, log.read_text(errors="replace")[-3000:]
    assert stopped[0] is not None


def test_a_dispatched_run_is_executed_and_recorded_with_its_log(cluster):
    workflow = cluster.workflow(
        '[[steps]]\nrun = ["sh", "-c", "echo hello $TOKEN; echo oops >&2"]\n'
        'env = { TOKEN = { credential = "api-token" } }\n'
        '[[steps]]\nrun = ["sh", "-c", "echo nice=$(nice) io=$(ionice -p $$)"]\n'
        '[[steps]]\nrun = ["sh", "-c", "exit 3"]\n', retries=1)
    dispatch = cluster.dispatch(workflow)
    send(cluster.app, dispatch)
    [run_id] = dispatch.run_ids
    run = cluster.finished(run_id)
    assert (run["state"], run["exit_code"], run["worker"], run["host"]) == (
        "failed", 3, WORKER, os.uname().nodename), run["error"]
    assert run["started_at"] and run["duration_s"] > 0 and run["cpu_user_s"] is not None
    assert run["tariff_cost"] is not None  # charged under the worker's tariff as it ended
    log = b"".join(data for _, data in PgWorkers(cluster.store).log_chunks(run_id)).decode()
    assert "hello ***\noops\n" in log and "exited with code 3" in log  # masked as locally
    assert SECRET not in log
    assert "nice=19 io=idle" in log  # an eco worker's runs, as a local eco worker's
    retry = cluster.store.queue.retried_as(run_id)  # written with the end, as a daemon does
    assert retry is not None and retry.attempt == 2 and retry.state.value == "queued"


def test_a_message_delivered_twice_or_with_a_stale_token_is_dropped(cluster, tmp_path):
    counter = tmp_path / "count"
    workflow = cluster.workflow(f'[[steps]]\nrun = ["sh", "-c", "echo x >> {counter}"]\n')
    dispatch = cluster.dispatch(workflow, count=2)  # an eco-like batch: one after another
    stale = Dispatch("not-the-token", dispatch.mode, dispatch.pool, dispatch.run_ids)
    send(cluster.app, stale)
    wait_for(lambda: cluster.dropped(stale), "the stale message to be dropped")
    assert {cluster.run(i)["worker"] for i in dispatch.run_ids} == {None}
    send(cluster.app, dispatch)
    assert [cluster.finished(i)["state"] for i in dispatch.run_ids] == ["succeeded"] * 2
    send(cluster.app, dispatch)
    wait_for(lambda: cluster.dropped(dispatch), "the second delivery to be dropped")
    assert counter.read_text() == "x\nx\n"


def test_a_cancel_asked_from_another_machine_stops_the_running_run(cluster, tmp_path):
    workflow = cluster.workflow(NOTIFY + '[[steps]]\nrun = ["sleep", "600"]\n')
    dispatch = cluster.dispatch(workflow)
    [run_id] = dispatch.run_ids
    send(cluster.app, dispatch)
    wait_for(lambda: cluster.run(run_id)["pgid"], "the step to start")
    with PgStore(cluster.store.url) as other:
        assert PgWorkers(other).request_cancel([run_id], now=datetime.now(UTC)) == [run_id]
    run = cluster.finished(run_id)
    assert run["state"] == "cancelled" and "run cancelled" in run["error"]  # not timed out
    assert cluster.events(run_id) == ["failure"]  # in the outbox, written with its end


def test_a_run_cancelled_before_a_worker_accepted_it_ends_without_running(cluster, tmp_path):
    counter = tmp_path / "count"
    workflow = cluster.workflow(f'[[steps]]\nrun = ["sh", "-c", "echo x >> {counter}"]\n')
    dispatch = cluster.dispatch(workflow)
    [run_id] = dispatch.run_ids
    PgWorkers(cluster.store).request_cancel([run_id], now=datetime.now(UTC))
    send(cluster.app, dispatch)
    run = cluster.finished(run_id)
    assert (run["state"], run["started_at"], run["worker"]) == ("cancelled", None, WORKER)
    assert not counter.exists()


def test_a_killed_pool_process_leaves_its_run_settled_and_never_run_twice(cluster, tmp_path):
    counter, step_pid = tmp_path / "count", tmp_path / "step.pid"
    workflow = cluster.workflow(
        NOTIFY + f'[[steps]]\nrun = ["sh", "-c", "echo x >> {counter}; echo $$ > {step_pid};'
        f' exec sleep 600"]\n')
    dispatch = cluster.dispatch(workflow)
    [run_id] = dispatch.run_ids
    send(cluster.app, dispatch)
    wait_for(step_pid.exists, "the step to start")
    wait_for(lambda: step_pid.read_text().strip(), "the step's pid")
    os.kill(cluster.run(run_id)["pid"], signal.SIGKILL)
    run = cluster.finished(run_id)
    assert run["state"] == "failed" and "died while running it" in run["error"]
    wait_for(lambda: cluster.dropped(dispatch), "the message Celery put back to be dropped")
    assert counter.read_text() == "x\n"
    wait_for(lambda: not running(int(step_pid.read_text())), "the step to be killed by its mark")
    assert cluster.store.queue.retried_as(run_id) is None  # its workflow allows no retry
    assert cluster.events(run_id) == ["failure"]
