"""A real cluster on this box: a PostgreSQL database, a Redis broker, `easyflow daemon`
coordinators and `easyflow worker` processes, each with a state directory of its own as if on a
machine of its own, and a client that drives the real CLI with the cluster's URLs.

Used by the end-to-end cluster tests (a test module loads it with
`pytest_plugins = ["tests.cluster_harness"]`): the `cluster` fixture gives a harness whose
processes are always killed by pid in teardown, and a failing test's report gets their logs.
Every wait polls with a generous timeout; nothing relies on a fixed sleep.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import easyflow_command
from tests.daemon_harness import DaemonHarness, wait_for

START_TIMEOUT = 60.0
_CLUSTERS = pytest.StashKey[list]()


class Node:
    """One process of the cluster (a coordinator or a worker) in a home of its own."""

    def __init__(self, root: Path, name: str, argv: list[str], env: dict[str, str]) -> None:
        self.name = name
        self.home = root / name
        self.home.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.log_path = root / f"{name}.log"
        env = {**env, "EASYFLOW_HOME": str(self.home)}
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(argv, env=env, stdin=subprocess.DEVNULL, stdout=log,
                                         stderr=subprocess.STDOUT, start_new_session=True)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc.poll() is None

    def children(self) -> list[int]:
        """The pids whose parent is this node's process (a Celery worker's pool processes)."""
        found = []
        for stat in Path("/proc").glob("[0-9]*/stat"):
            with contextlib.suppress(OSError, ValueError, IndexError):
                fields = stat.read_text().rsplit(")", 1)[1].split()
                if int(fields[1]) == self.pid:
                    found.append(int(stat.parent.name))
        return found

    def pool_process_of(self, pid: int) -> int:
        """The child of this node's process that `pid` descends from (the pool process
        running a run whose step is `pid`)."""
        seen = pid
        while seen > 1:
            parent = int(Path(f"/proc/{seen}/stat").read_text().rsplit(")", 1)[1].split()[1])
            if parent == self.pid:
                return seen
            seen = parent
        raise AssertionError(f"process {pid} does not descend from {self.name} ({self.pid})")

    def kill(self, sig: int = signal.SIGKILL) -> None:
        """`sig` to the node's main process only (its children live on, as after a crash)."""
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.pid, sig)

    def kill_all(self) -> None:
        """Teardown: the node's whole session (pool processes and the steps they started)."""
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(10)

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""


class ClusterHarness(DaemonHarness):
    """The client's home and CLI (a `DaemonHarness` with the cluster's URLs in its
    environment), plus the coordinators and workers it starts."""

    def __init__(self, root: Path, database_url: str, broker_url: str) -> None:
        super().__init__(root / "client")
        self.root = root
        self.database_url = database_url
        self.broker_url = broker_url
        self.nodes: dict[str, Node] = {}

    def env(self, **extra: str) -> dict[str, str]:
        return super().env(EASYFLOW_DATABASE_URL=self.database_url,
                           EASYFLOW_BROKER_URL=self.broker_url, **extra)

    # ------------------------------------------------------------------ processes

    def node_env(self) -> dict[str, str]:
        """A node reads the same `easyflow.toml` as the client (pools, lease, windows)."""
        env = self.env()
        if self.config_path.exists():
            env["EASYFLOW_CONFIG"] = str(self.config_path)
        return env

    def start_coordinator(self, name: str = "coordinator", *, active: bool = True) -> Node:
        """`easyflow daemon` on the cluster; waits until it holds the coordinator lock unless
        `active` is False (a standby)."""
        node = self._start(name, ["daemon"])
        if active:
            wait_for(lambda: self.coordinator_pid() is not None and node.alive(),
                     START_TIMEOUT, message=f"{name} to become the coordinator")
        return node

    def start_worker(self, pool: str, name: str, concurrency: int = 1) -> Node:
        """`easyflow worker --pool POOL`; waits until it registered and heartbeats."""
        node = self._start(name, ["worker", "--pool", pool, "--concurrency", str(concurrency),
                                  "--name", name])
        wait_for(lambda: self._check_alive(node) and self.worker_row(name),
                 START_TIMEOUT, message=f"worker {name} to register")
        return node

    def _start(self, name: str, args: list[str]) -> Node:
        assert name not in self.nodes or not self.nodes[name].alive(), f"{name} runs already"
        node = Node(self.root, name, [*easyflow_command(), *args], self.node_env())
        self.nodes[name] = node
        return node

    def _check_alive(self, node: Node) -> bool:
        if not node.alive():
            raise AssertionError(f"{node.name} exited {node.proc.returncode}\n"
                                 f"{node.log_text()[-3000:]}")
        return True

    def kill_everything(self) -> None:
        for node in self.nodes.values():
            node.kill_all()
        with contextlib.suppress(Exception):
            for run in self.peek_runs():
                if run["state"] == "running" and run.get("pgid"):
                    with contextlib.suppress(OSError):
                        os.killpg(run["pgid"], signal.SIGKILL)

    # ------------------------------------------------------------------ the database

    def sql(self, query: str, args: tuple = ()) -> list[dict[str, Any]]:
        import psycopg
        from psycopg.rows import dict_row

        with psycopg.connect(self.database_url, autocommit=True, row_factory=dict_row) as conn:
            cursor = conn.execute(query, args)
            return cursor.fetchall() if cursor.description else []

    def peek_runs(self, workflow: str | None = None) -> list[dict[str, Any]]:
        """The runs table read straight from PostgreSQL (times as text, like the CLI's)."""
        query, args = "SELECT * FROM runs", ()
        if workflow:
            query, args = query + " WHERE workflow = %s", (workflow,)
        try:
            rows = self.sql(query + " ORDER BY id", args)
        except Exception as exc:  # noqa: BLE001 — not migrated yet
            if "does not exist" in str(exc):
                return []
            raise
        return [{k: (v.isoformat() if hasattr(v, "isoformat") else v) for k, v in row.items()}
                for row in rows]

    def worker_row(self, name: str) -> dict[str, Any] | None:
        try:
            rows = self.sql("SELECT * FROM workers WHERE name = %s", (name,))
        except Exception as exc:  # noqa: BLE001 — not migrated yet
            if "does not exist" in str(exc):
                return None
            raise
        return rows[0] if rows else None

    def coordinator_pid(self) -> int | None:
        """The PostgreSQL backend pid of the session holding the coordinator lock, if any."""
        from easyflow_cli.storage.cluster_queue import COORDINATOR_HOLDER_SQL, COORDINATOR_LOCK

        rows = self.sql(COORDINATOR_HOLDER_SQL, (COORDINATOR_LOCK,))
        return rows[0]["pid"] if rows else None

    def wipe_broker(self) -> None:
        """Everything Redis holds, gone, as after a restart without persistence."""
        import redis

        redis.Redis.from_url(self.broker_url).flushall()

    # ------------------------------------------------------------------ waits

    def wait_until(self, predicate: Callable[[list[dict[str, Any]]], Any], *,
                   timeout: float = 60.0, message: str = "runs") -> list[dict[str, Any]]:
        """Until `predicate(runs)` holds on the runs as PostgreSQL has them; those runs."""
        seen: list[list[dict[str, Any]]] = [[]]

        def check() -> bool:
            seen[0] = self.peek_runs()
            return bool(predicate(seen[0]))

        try:
            wait_for(check, timeout, interval=0.1, message=message)
        except AssertionError as exc:
            summary = [(r["id"], r["workflow"], r["mode"], r["state"], r["worker"])
                       for r in seen[0]]
            raise AssertionError(f"{exc}\nruns: {summary}\n{self.logs_tail()}") from None
        return seen[0]

    def logs_tail(self, lines: int = 40) -> str:
        return "\n".join(f"--- {name} (tail):\n" + "\n".join(
            node.log_text().splitlines()[-lines:]) for name, node in self.nodes.items())


def finished(runs: list[dict[str, Any]], count: int) -> bool:
    done = [r for r in runs if r["state"] not in ("queued", "running")]
    return len(runs) >= count and len(done) == len(runs)


# ---------------------------------------------------------------------- pytest plugin


@pytest.fixture
def cluster(tmp_path: Path, database_url: str, redis_server,
            request: pytest.FixtureRequest) -> Iterator[ClusterHarness]:
    """A cluster harness on this test's own schema and an emptied Redis (nothing started)."""
    pytest.importorskip("celery", reason="the [cluster] extra is not installed")
    harness = ClusterHarness(tmp_path, database_url, redis_server.url())
    harness.wipe_broker()
    request.node.stash.setdefault(_CLUSTERS, []).append(harness)
    try:
        yield harness
    finally:
        harness.kill_everything()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    report = yield
    if report.when == "call" and report.failed:
        for harness in item.stash.get(_CLUSTERS, []):
            for name, node in harness.nodes.items():
                report.sections.append((f"{name} log", node.log_text()[-20000:]))
    return report


def step_seconds(started: str, ended: str) -> float:
    return time.mktime(time.strptime(ended[:19], "%Y-%m-%dT%H:%M:%S")) - time.mktime(
        time.strptime(started[:19], "%Y-%m-%dT%H:%M:%S"))
