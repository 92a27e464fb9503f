"""Whole `easyflow` processes timed (start-up, reports, a bulk submission), and the queue's bulk
enqueue through the library."""

from __future__ import annotations

import compileall
import importlib.util
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import easyflow_cli
from easyflow_cli.core.model import Trigger
from easyflow_cli.core.planning import QueuePolicy, plan_run
from easyflow_cli.core.spec import parse_workflow_text
from easyflow_cli.core.stats import median
from easyflow_cli.core.timeutil import utcnow
from easyflow_cli.storage.store import Store
from easyflow_cli.tools.bench_daemon import WORKFLOWS, BenchDaemon, BenchError
from easyflow_cli.tools.local_daemon import daemon_environment


def cli_command() -> list[str]:
    """The installed `easyflow` script next to this Python, else `python -m easyflow_cli`."""
    script = Path(sys.executable).parent / "easyflow"
    return [str(script)] if script.exists() else [sys.executable, "-m", "easyflow_cli"]


def cache_bytecode() -> bool:
    """Our modules compiled to their cached bytecode, as `pip install` does (an editable install
    run with PYTHONDONTWRITEBYTECODE would compile them again in every timed process); whether
    every one of them now has it, fresh."""
    package = Path(easyflow_cli.__file__).parent
    compileall.compile_dir(package, quiet=2)
    return all(_cached(source) for source in package.rglob("*.py"))


def _cached(source: Path) -> bool:
    compiled = Path(importlib.util.cache_from_source(str(source)))
    return compiled.exists() and compiled.stat().st_mtime >= source.stat().st_mtime


def cli_environment(home: Path) -> dict[str, str]:
    """The environment of a timed process: the daemon's, and Python's bytecode cache in use, as
    in a user's shell."""
    env = daemon_environment(home)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    return env


def cli_wall_times(args: list[str], home: Path, samples: int) -> list[float]:
    """Milliseconds each whole `easyflow ARGS` process takes, one after another."""
    return [wall for wall, _ in cli_process_times(args, home, samples)]


def cli_process_times(args: list[str], home: Path, samples: int) -> list[tuple[float, float]]:
    """Each whole `easyflow ARGS` process, one after another: its wall time and the CPU time
    (user + system) it used, in milliseconds. The CPU time is what other load on the box
    disturbs least."""
    return [_one_process(args, home) for _ in range(samples)]


def _one_process(args: list[str], home: Path) -> tuple[float, float]:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    done = subprocess.run(cli_command() + args, env=cli_environment(home),
                          stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                          stderr=subprocess.PIPE)
    wall = (time.perf_counter() - start) * 1000
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        raise BenchError(f"easyflow {' '.join(args)} failed: {done.stderr.decode()[-300:]}")
    cpu = (after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime) * 1000
    return wall, cpu


def cli_bulk_submit(daemon: BenchDaemon, runs: int) -> dict[str, Any]:
    """Runs per second through one `easyflow run X --now --no-wait --count N` process, start to
    exit; then the daemon is left to finish them, so the next figure starts from a quiet box."""
    args = ["run", "bench-noop", "--now", "--no-wait", "--count", str(runs)]
    start = time.perf_counter()
    done = subprocess.run(cli_command() + args, env=daemon_environment(daemon.home),
                          stdin=subprocess.DEVNULL, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        raise BenchError(f"easyflow {' '.join(args)} failed: {done.stderr[-300:]}")
    ids = [int(line) for line in done.stdout.split()]
    if len(ids) != runs or not daemon.wait_finished(range(ids[0], ids[-1] + 1),
                                                    timeout=max(60.0, runs / 20), poll=0.02):
        raise BenchError(f"the {runs} runs of one bulk submission did not all run")
    return {"runs": runs, "seconds": round(seconds, 3), "runs_per_s": round(runs / seconds, 1)}


def library_enqueue(root: Path, runs: int, repeats: int = 3) -> dict[str, Any]:
    """Runs per second through the queue's bulk `enqueue` (one transaction), best of a few."""
    spec = parse_workflow_text('name = "bench-noop"\n' + WORKFLOWS["bench-noop"])
    rates = []
    with Store.open(root / "enqueue-home") as store:
        store.save_workflows([spec], utcnow())
        for _ in range(repeats):
            rows = [plan_run(spec, trigger=Trigger.SCHEDULE, now=utcnow(), policy=QueuePolicy())
                    for _ in range(runs)]
            start = time.perf_counter()
            store.queue.enqueue(rows)
            rates.append(runs / (time.perf_counter() - start))
    return {"runs": runs, "repeats": repeats, "runs_per_s": round(median(rates), 1)}
