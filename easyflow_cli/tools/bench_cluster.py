"""`easyflow bench --cluster`: dispatch latency and drain through the cluster's engine
(coordinator → PostgreSQL → Celery over Redis → `easyflow worker`), measured on this box.

It needs the cluster's PostgreSQL database and Redis broker (`[cluster]`, or
`EASYFLOW_DATABASE_URL` and `EASYFLOW_BROKER_URL`). In that database it makes a schema of its
own, dropped at the end, so it never reads or writes an installation's runs; it starts a
coordinator and real-time workers of its own as processes on this box, in a throwaway
directory. Use a broker database no production worker listens on: the bench's messages go to
the pools' usual queues (a production worker would drop them, as their tokens match none of
its runs, and the bench would wait for its dispatch timeout).

Latency is from the submitting transaction to the stamp step's first instruction (both read
the system-wide monotonic clock), like the local figure it is printed beside.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, quote, urlencode, urlsplit, urlunsplit

from easyflow_cli.core.cluster_config import ClusterConfig
from easyflow_cli.core.model import Trigger
from easyflow_cli.core.planning import QueuePolicy, plan_run
from easyflow_cli.core.spec import WorkflowSpec, parse_workflow_text
from easyflow_cli.core.timeutil import utcnow
from easyflow_cli.tools.bench_daemon import STEPS, BenchError
from easyflow_cli.tools.bench_figures import distribution
from easyflow_cli.tools.bench_steps import STAMP_MARK

WORKFLOWS = {
    "bench-stamp": f'[[steps]]\ncall = "{STEPS}:stamp"\n',
    "bench-noop": f'[[steps]]\ncall = "{STEPS}:noop"\n',
}
CONFIG = """\
[cluster]
lease = "10s"
dispatch_timeout = "10s"
"""
START_TIMEOUT_S = 60.0
WARM_UP_RUNS = 20
RUN_TIMEOUT_S = 30.0

Progress = Callable[[str], None]


def with_schema(url: str, schema: str) -> str:
    """The database URL with its `search_path` set to `schema` (other options kept)."""
    parts = urlsplit(url)
    query = [(k, v) for k, v in parse_qsl(parts.query) if k != "options"]
    query.append(("options", f"-csearch_path={schema}"))
    return urlunsplit(parts._replace(query=urlencode(query, quote_via=quote)))


class BenchCluster:
    """A schema of its own, a coordinator and workers on this box; submitting runs to them."""

    def __init__(self, cluster: ClusterConfig, root: Path, workers: int) -> None:
        if cluster.broker_url is None:
            raise BenchError("--cluster needs a broker: set [cluster] broker_url or "
                             "EASYFLOW_BROKER_URL")
        self.cluster = cluster
        self.root = root
        self.workers = workers
        self.schema = f"easyflow_bench_{secrets.token_hex(4)}"
        self.url = with_schema(cluster.database_url, self.schema)
        self.processes: list[subprocess.Popen] = []
        self.specs: dict[str, WorkflowSpec] = {}
        self.store: Any = None

    def env(self, name: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("EASYFLOW_")}
        env.update(EASYFLOW_HOME=str(self.root / name), EASYFLOW_DATABASE_URL=self.url,
                   EASYFLOW_BROKER_URL=str(self.cluster.broker_url),
                   EASYFLOW_CONFIG=str(self.root / "easyflow.toml"))
        return env

    def start(self) -> None:
        import psycopg

        from easyflow_cli.storage.pg_store import PgStore

        with psycopg.connect(self.cluster.database_url, autocommit=True) as conn:
            conn.execute(f'CREATE SCHEMA "{self.schema}"')
        self.root.mkdir(parents=True, exist_ok=True)
        (self.root / "easyflow.toml").write_text(CONFIG)
        self.store = PgStore(self.url)
        specs = [parse_workflow_text(f'name = "{name}"\n{body}', str(self.root / f"{name}.toml"))
                 for name, body in WORKFLOWS.items()]
        self.store.save_workflows(specs, utcnow())
        self.specs = {spec.name: spec for spec in specs}
        self._spawn("coordinator", ["daemon"])
        for number in range(1, self.workers + 1):
            name = f"bench-rt{number}"
            self._spawn(name, ["worker", "--pool", "real-time", "--concurrency", "1",
                               "--name", name])
        self._wait_workers()

    def _spawn(self, name: str, args: list[str]) -> None:
        (self.root / name).mkdir(mode=0o700, exist_ok=True)
        with open(self.root / f"{name}.log", "ab") as log:
            self.processes.append(subprocess.Popen(
                [sys.executable, "-m", "easyflow_cli", *args], env=self.env(name),
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True))

    def _wait_workers(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT_S
        while self._rows("SELECT count(*) FROM workers")[0][0] < self.workers:
            for process in self.processes:
                if process.poll() is not None:
                    raise BenchError(f"a cluster process exited ({process.returncode}): see "
                                     f"{self.root}")
            if time.monotonic() > deadline:
                raise BenchError(f"the workers did not register: see {self.root}")
            time.sleep(0.05)

    def _rows(self, sql: str, args: tuple = ()) -> list[tuple]:
        with self.store.write() as conn:
            return conn.execute(sql, args).fetchall()

    def stop(self) -> None:
        for process in self.processes:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, 15)
        for process in self.processes:
            try:
                process.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, 9)
                process.wait()
        if self.store is not None:
            self.store.close()
        import psycopg

        with psycopg.connect(self.cluster.database_url, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA IF EXISTS "{self.schema}" CASCADE')

    def submit(self, workflow: str, count: int = 1) -> tuple[range, float]:
        """`count` runs in one transaction (its commit wakes the coordinator); their ids and
        the monotonic time the transaction began at."""
        row = plan_run(self.specs[workflow], trigger=Trigger.MANUAL, now=utcnow(),
                       policy=QueuePolicy())
        began = time.monotonic()
        return self.store.queue.enqueue([row] * count), began

    def wait_finished(self, ids: range, timeout: float = RUN_TIMEOUT_S) -> None:
        deadline = time.monotonic() + timeout
        while self._rows("SELECT count(*) FROM runs WHERE id BETWEEN %s AND %s AND state IN"
                         " ('queued', 'running')", (ids[0], ids[-1]))[0][0]:
            if time.monotonic() > deadline:
                raise BenchError(f"runs {ids[0]}–{ids[-1]} did not finish within "
                                 f"{timeout:.0f} s: see {self.root}")
            time.sleep(0.002)

    def marked_value(self, run_id: int) -> float:
        """The monotonic time the stamp step printed, from the log chunks its worker wrote."""
        chunks = self._rows("SELECT data FROM run_log_chunks WHERE run_id = %s ORDER BY seq",
                            (run_id,))
        for line in b"".join(bytes(data) for (data,) in chunks).decode().splitlines():
            if line.startswith(STAMP_MARK + " "):
                return float(line.split()[1])
        raise BenchError(f"run {run_id} printed no {STAMP_MARK!r} line")


@contextlib.contextmanager
def running_cluster(cluster: ClusterConfig, root: Path, workers: int) -> Iterator[BenchCluster]:
    bench = BenchCluster(cluster, root, workers)
    try:
        bench.start()
        yield bench
    finally:
        bench.stop()


def cluster_figures(cluster: ClusterConfig, root: Path, *, samples: int, drain_runs: int,
                    workers: int = 2, progress: Progress = lambda message: None
                    ) -> dict[str, Any]:
    """Dispatch latency of `samples` stamp runs one at a time (after a warm-up), and the time
    `drain_runs` no-op runs submitted at once take to finish, through the cluster."""
    progress(f"cluster: a coordinator and {workers} real-time workers")
    with running_cluster(cluster, root, workers) as bench:
        progress("cluster: warming up")
        for _ in range(WARM_UP_RUNS):
            ids, _ = bench.submit("bench-stamp")
            bench.wait_finished(ids)
        progress("cluster: dispatch latency")
        latencies = []
        for _ in range(samples):
            ids, began = bench.submit("bench-stamp")
            bench.wait_finished(ids)
            latencies.append((bench.marked_value(ids[0]) - began) * 1000)
        progress("cluster: drain")
        ids, began = bench.submit("bench-noop", drain_runs)
        bench.wait_finished(ids, timeout=max(RUN_TIMEOUT_S, drain_runs / 10))
        seconds = time.monotonic() - began
    return {"workers": workers, "dispatch_ms": distribution(latencies),
            "drain": {"runs": drain_runs, "seconds": round(seconds, 3),
                      "runs_per_s": round(drain_runs / seconds, 1)}}
