"""The kill -9 soak: a real daemon killed again and again, and its workers too, under a mixed
load, then the books are checked. Run by hand (it takes minutes):

    python -m tests.e2e.soak --daemon-kills 50 --worker-kills 20

The load: plain short steps, sleeps, steps that leave a `setsid` or a double-forked process
behind (an hour-long sleep), a `call` step whose child starts a session of its own, failing
steps with retries, a step past its timeout, in every mode. Every step first appends its run's
id to one file, so a run executed twice shows as two lines; every process of the soak carries
SOAK_TAG in its environment, so whatever is left at the end is found by a look through /proc.
It prints one line of figures and exits 1 unless runs lost, run twice, stuck and processes
left are all 0. tests/e2e/test_soak.py runs a small one.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import random
import signal
import sqlite3
import sys
import tempfile
import time
import uuid
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import tomli_w

from easyflow_cli.core.model import Mode, Trigger
from easyflow_cli.core.planning import QueuePolicy, plan_run
from easyflow_cli.core.timeutil import utcnow
from easyflow_cli.runtime.client import wake
from easyflow_cli.storage.store import Store
from tests.daemon_harness import DaemonHarness, wait_for

FINISHED = ("succeeded", "failed", "timed_out", "cancelled")
ESCAPEE = "sleep 3600"

CONFIG = """
[pools.real-time]
workers = 2
timeout = "1m"

[pools.balanced]
workers = 1
timeout = "1m"

[pools.eco]
workers = 1
off_peak = ""
timeout = "1m"

[daemon]
drain_grace = "5s"
kill_grace = "1s"
"""

CALL_MODULE = f'''
import os, subprocess, sys, time

def spawn(ran, pause):
    with open(ran, "a") as out:
        out.write(os.environ["EASYFLOW_RUN_ID"] + "\\n")
    subprocess.Popen("{ESCAPEE}".split(), start_new_session=True,
                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(float(pause))
'''


@dataclass
class Figures:
    daemon_kills: int = 0
    worker_kills: int = 0
    submitted: int = 0
    rows: int = 0
    states: str = ""
    lost: int = 0
    ran_twice: int = 0
    stuck: int = 0
    processes_left: int = 0
    succeeded_not_seen_once: int = 0
    seconds: float = 0.0
    details: str = ""  # which runs broke a rule, and their workflows

    @property
    def clean(self) -> bool:
        return not (self.lost or self.ran_twice or self.stuck or self.processes_left
                    or self.succeeded_not_seen_once)

    def line(self) -> str:
        return (f"kill -9 soak: {self.daemon_kills} daemon kills, {self.worker_kills} worker "
                f"kills, {self.submitted} runs submitted, {self.rows} rows {self.states}; "
                f"runs lost {self.lost}, run twice {self.ran_twice}, stuck {self.stuck}, "
                f"processes left {self.processes_left}, succeeded but not seen once "
                f"{self.succeeded_not_seen_once}; {self.seconds:.1f}s")


class Soak:
    def __init__(self, root: Path, seed: int) -> None:
        self.daemon = DaemonHarness(root)
        self.rng = random.Random(seed)
        self.tag = uuid.uuid4().hex
        self.ran = root / "ran.txt"
        self.ran.touch()
        self.submitted: list[int] = []
        self.figures = Figures()

    # ------------------------------------------------------------------ the load

    def register(self) -> None:
        (self.daemon.workflow_dir / "soakcall.py").write_text(CALL_MODULE)
        record = f'echo "$EASYFLOW_RUN_ID" >> {self.ran}; '
        shells = {
            "plain": (record + 'sleep "0.0$((EASYFLOW_RUN_ID % 5))"', {}),
            "sleeper": (record + "sleep 1", {"retries": 1}),
            "setsid": (record + f"setsid {ESCAPEE} & sleep 0.3", {}),
            "double-fork": (record + f"( {ESCAPEE} & ) ; sleep 0.3", {"retries": 1}),
            "flaky": (record + "sleep 0.1; test $((EASYFLOW_RUN_ID % 3)) -ne 0", {"retries": 2}),
            "overdue": (record + f"setsid {ESCAPEE} & sleep 30", {"timeout": "2s"}),
        }
        paths = [self._write(name, [{"name": "s", "run": script, "shell": True,
                                     "env": {"SOAK_TAG": self.tag}}], fields)
                 for name, (script, fields) in shells.items()]
        call_step = {"name": "c", "call": "soakcall:spawn", "args": [str(self.ran), "0.3"],
                     "env": {"SOAK_TAG": self.tag}}
        paths.append(self._write("caller", [call_step], {"retries": 1}))
        self.daemon.write_config(CONFIG)
        self.daemon.cli("workflow", "add", *map(str, paths))

    def _write(self, name: str, steps: list[dict], fields: dict) -> Path:
        path = self.daemon.workflow_dir / f"{name}.toml"
        path.write_text(tomli_w.dumps({"name": name, **fields, "steps": steps}))
        return path

    def submit(self, count: int, workflow: str | None = None) -> None:
        """Queue `count` runs straight into the database, in random modes, and wake the daemon."""
        with Store.open(self.daemon.home) as store:
            specs = [store.get_workflow(workflow)] if workflow else store.all_workflows()
            for _ in range(count):
                row = plan_run(self.rng.choice(specs), trigger=Trigger.MANUAL, now=utcnow(),
                               policy=QueuePolicy(), override=self.rng.choice(list(Mode)))
                self.submitted.extend(store.queue.enqueue([row]))
        with contextlib.suppress(OSError):  # not answering yet: it claims the queue when it does
            wake(self.daemon.home)

    # ------------------------------------------------------------------ the kills

    def kill_a_worker(self) -> bool:
        """SIGKILL the worker of a running run, if one runs; whether one was killed."""
        rows = self.rows("SELECT pid FROM runs WHERE state = 'running' AND pool != 'foreground'"
                         " AND pid IS NOT NULL")
        pids = [row[0] for row in rows if row[0] != self.daemon.pid]
        if not pids:
            return False
        try:
            os.kill(self.rng.choice(pids), signal.SIGKILL)
        except ProcessLookupError:
            return False
        self.figures.worker_kills += 1
        return True

    def kill_the_daemon(self) -> None:
        self.daemon.proc.send_signal(signal.SIGKILL)
        self.daemon.proc.wait(10)
        self.figures.daemon_kills += 1

    def one_life(self, runs: int, kill_a_worker: bool) -> None:
        """Start the daemon, load it, maybe kill a worker mid-run, then kill the daemon."""
        self.daemon.launch()
        if self.rng.random() < 0.15:
            time.sleep(self.rng.uniform(0.0, 0.5))  # while it starts: mid-recovery
            self.kill_the_daemon()
            return
        self.daemon.wait_answering()
        self.submit(runs)
        time.sleep(self.rng.uniform(0.2, 1.0))
        if kill_a_worker:
            self.submit(2, "sleeper")  # a run certainly executing: a second long
            wait_for(self.kill_a_worker, timeout=30, interval=0.05,
                     message="a running run whose worker to kill")
            time.sleep(self.rng.uniform(0.1, 0.5))
        self.kill_the_daemon()

    def run(self, daemon_kills: int, worker_kills: int, runs: int) -> Figures:
        began = time.monotonic()
        self.register()
        for life in range(daemon_kills):
            share = max(0, runs - len(self.submitted)) // max(1, daemon_kills - life)
            owed = worker_kills - self.figures.worker_kills
            lives_left = daemon_kills - life
            self.one_life(share, owed > 0 and (owed >= lives_left
                                               or self.rng.random() < 2 * owed / lives_left))
        self.settle()
        self.count(began)
        return self.figures

    # ------------------------------------------------------------------ the books

    def settle(self) -> None:
        """A last daemon settles what the kills left, and runs what is still queued."""
        self.daemon.launch()
        self.daemon.wait_answering()
        wait_for(lambda: not self.rows("SELECT id FROM runs WHERE state IN "
                                       "('queued', 'running')"),
                 timeout=300, interval=0.2, message="every run to settle")
        self.daemon.stop(timeout=60)
        deadline = time.monotonic() + 5  # a SIGKILL takes a moment to be delivered
        while self.tagged() and time.monotonic() < deadline:
            time.sleep(0.1)

    def count(self, began: float) -> None:
        rows = self.rows("SELECT id, state, workflow FROM runs")
        runs = {row[0]: row[1] for row in rows}
        executions = Counter(int(line) for line in self.ran.read_text().split())
        f = self.figures
        twice = [(row[0], row[2], row[1]) for row in rows if executions[row[0]] > 1]
        f.details = f"run twice: {twice}" if twice else ""
        f.submitted, f.rows = len(self.submitted), len(runs)
        f.states = str(dict(Counter(runs.values())))
        f.lost = sum(1 for run_id in self.submitted if run_id not in runs)
        f.ran_twice = sum(1 for n in executions.values() if n > 1)
        f.stuck = sum(1 for state in runs.values() if state not in FINISHED)
        f.processes_left = len(self.tagged())
        f.succeeded_not_seen_once = sum(1 for run_id, state in runs.items()
                                        if state == "succeeded" and executions[run_id] != 1)
        f.seconds = time.monotonic() - began

    def rows(self, sql: str) -> list[tuple]:
        conn = sqlite3.connect(self.daemon.home / "easyflow.db", timeout=30)
        try:
            return conn.execute(sql).fetchall()
        finally:
            conn.close()

    def tagged(self) -> set[int]:
        """Live processes carrying this soak's tag."""
        needle = f"SOAK_TAG={self.tag}".encode()
        found = set()
        for entry in os.scandir("/proc"):
            if not entry.name.isdigit():
                continue
            try:
                with open(f"/proc/{entry.name}/environ", "rb") as env:
                    if needle in env.read().split(b"\0"):
                        found.add(int(entry.name))
            except OSError:
                continue
        return found

    def clean_up(self) -> None:
        """Whatever happens, leave nothing running: the daemon and the soak's processes."""
        self.daemon.kill()
        for pid in self.tagged():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


def soak(root: Path, daemon_kills: int, worker_kills: int, runs: int, seed: int) -> Figures:
    run = Soak(root, seed)
    try:
        return run.run(daemon_kills, worker_kills, runs)
    finally:
        run.clean_up()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.e2e.soak", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--daemon-kills", type=int, default=50)
    parser.add_argument("--worker-kills", type=int, default=20)
    parser.add_argument("--runs", type=int, default=1000, help="runs submitted in all")
    parser.add_argument("--seed", type=int, default=20261202)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="easyflow-soak-") as root:
        figures = soak(Path(root), args.daemon_kills, args.worker_kills, args.runs, args.seed)
    print(figures.line())
    if figures.details:
        print(figures.details)
    return 0 if figures.clean else 1


if __name__ == "__main__":
    sys.exit(main())
