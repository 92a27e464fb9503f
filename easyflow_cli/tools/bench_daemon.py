"""The bench's own daemon, in a throwaway state directory: its config, its workflows (one per
kind of step measured), submitting runs to it and waiting for them."""

from __future__ import annotations

import contextlib
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from easyflow_cli.core.model import Trigger
from easyflow_cli.core.paths import run_log_path
from easyflow_cli.core.planning import PlannedRun, QueuePolicy, plan_run
from easyflow_cli.core.spec import WorkflowSpec, parse_workflow_text
from easyflow_cli.core.timeutil import utcnow
from easyflow_cli.runtime.client import daemon_status, wake
from easyflow_cli.storage.store import Store
from easyflow_cli.tools.local_daemon import start_daemon, stop_daemon

BURN_ITERATIONS = 3_000_000
ECO_SPIN_SECONDS = "0.05"

BENCH_CONFIG = """\
[pools.eco]
off_peak = ""        # eco work may start at once: the backlog must keep the eco pool busy

[daemon]
drain_grace = "5s"
kill_grace = "1s"
"""

STEPS = "easyflow_cli.tools.bench_steps"
WORKFLOWS = {
    "bench-stamp": f'[[steps]]\ncall = "{STEPS}:stamp"\n',
    "bench-true": '[[steps]]\nrun = ["/bin/true"]\n',
    "bench-clock": '[[steps]]\nrun = ["date", "+%s.%N"]\n',
    "bench-noop": f'[[steps]]\ncall = "{STEPS}:noop"\n',
    "bench-burn": f'[[steps]]\ncall = "{STEPS}:burn"\nargs = ["{BURN_ITERATIONS}"]\n',
    "bench-eco-spin": f'execution_mode = "eco"\n[[steps]]\ncall = "{STEPS}:spin"\n'
                      f'args = ["{ECO_SPIN_SECONDS}"]\n',
    "bench-hourly": '[[steps]]\nrun = ["/bin/true"]\n[[schedules]]\nevery = "1h"\n',
}


class BenchError(RuntimeError):
    pass


class BenchDaemon:
    """A private state directory with the bench workflows, and a daemon serving it."""

    def __init__(self, root: Path, realtime_workers: int | None = None) -> None:
        self.root = root
        self.realtime_workers = realtime_workers
        self.home = root / "home"
        self.config_path = root / "easyflow.toml"
        self.proc: subprocess.Popen | None = None
        self._store: Store | None = None
        self.specs: dict[str, WorkflowSpec] = {}

    @property
    def store(self) -> Store:
        if self._store is None:
            raise BenchError("the bench daemon has not been started")
        return self._store

    def start(self, timeout: float = 30.0) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        pools = (f"[pools.real-time]\nworkers = {self.realtime_workers}\n"
                 if self.realtime_workers else "")
        self.config_path.write_text(BENCH_CONFIG + pools)
        self._store = Store.open(self.home)
        specs = [parse_workflow_text(f'name = "{name}"\n{body}', str(self.root / f"{name}.toml"))
                 for name, body in WORKFLOWS.items()]
        self.store.save_workflows(specs, utcnow())
        self.specs = {spec.name: spec for spec in specs}
        self.proc = start_daemon(self.home, self.config_path, self.root / "daemon.log")
        deadline = time.monotonic() + timeout
        while daemon_status(self.home) is None:
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise BenchError(f"the daemon did not start: see {self.root / 'daemon.log'}")
            time.sleep(0.05)

    def stop(self, timeout: float = 30.0) -> None:
        if self.proc is not None:
            stop_daemon(self.proc, timeout)
        if self._store is not None:
            self._store.close()

    def plan(self, workflow: str, trigger: Trigger = Trigger.MANUAL) -> PlannedRun:
        return plan_run(self.specs[workflow], trigger=trigger, now=utcnow(),
                        policy=QueuePolicy())

    def submit(self, workflow: str, count: int = 1,
               trigger: Trigger = Trigger.MANUAL) -> tuple[range, float, float]:
        """Insert `count` runs in one transaction and wake the daemon.

        Returns their ids and the monotonic and wall-clock times the transaction began at:
        read after the commit, a preemption of this process in between would make latencies
        look shorter (even negative) on a busy box; read before, they include the commit."""
        row = self.plan(workflow, trigger)
        submitted_mono, submitted_wall = time.monotonic(), time.time()
        ids = self.store.queue.enqueue([row] * count)
        wake(self.home)
        return ids, submitted_mono, submitted_wall

    def wait_finished(self, ids: range, timeout: float, poll: float = 0.005) -> bool:
        deadline = time.monotonic() + timeout
        while not self._all_finished(ids):
            if time.monotonic() > deadline:
                return False
            time.sleep(poll)
        return True

    def _all_finished(self, ids: range) -> bool:
        # The last run first: one row per poll, where counting thousands of them each time
        # would take CPU away from the daemon being measured.
        return (self.store.queue.get(ids[-1]).state.finished
                and not self.store.queue.unfinished_count(ids))

    def marked_value(self, run_id: int, mark: str) -> float:
        """The number a bench step printed after `mark` in the run's log."""
        for line in run_log_path(self.home, run_id).read_text().splitlines():
            if line.startswith(mark + " "):
                return float(line.split()[1])
        raise BenchError(f"run {run_id} printed no {mark!r} line")

    def status(self) -> dict[str, Any]:
        status = daemon_status(self.home)
        if status is None:
            raise BenchError("the daemon stopped answering")
        return status

    def processes(self) -> dict[str, list[int]]:
        """The daemon's pid and each pool's worker pids."""
        status = self.status()
        found = {"daemon": [status["pid"]]}
        found.update({mode: pool["workers"] for mode, pool in status["pools"].items()})
        return found


@contextlib.contextmanager
def running_daemon(root: Path, realtime_workers: int | None = None) -> Iterator[BenchDaemon]:
    daemon = BenchDaemon(root, realtime_workers)
    try:
        daemon.start()
        yield daemon
    finally:
        daemon.stop()
