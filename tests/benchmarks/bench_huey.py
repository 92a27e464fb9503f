"""easyflow side by side with Huey, in one run on this machine (not part of the test suite).

    .venv/bin/pip install -e '.[bench]'
    .venv/bin/python tests/benchmarks/bench_huey.py [--quick] [--json]

Huey: `SqliteHuey` with a consumer of 2 process workers (`-w 2 -k process -q`), once at its
default polling (`-d 0.1 -m 10 -b 1.15`) and once tuned to its minimum delay (`-d 0.001
-m 0.001 -b 1.0`). easyflow: its own bench functions (easyflow_cli/tools/bench.py), with the
real-time pool cut to the same 2 workers and Python-callable steps.

- dispatch latency: from just before the submission (Huey: `task()`, one INSERT; easyflow: the
  bench's INSERT transaction, then a socket wake-up) to the first instruction of the task,
  which reads `time.monotonic()`; one task at a time.
- drain: Huey gets N no-op tasks queued while its consumer is stopped, then started; its rate
  is N over the span from the first task's start to the last one's (consumer start-up left
  out, which favours Huey). easyflow: N runs committed at once to a running daemon, rate from
  the commit to the last `finished_at`.
- idle CPU: consumer (or daemon) and its workers, from /proc, over an idle period.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from easyflow_cli.tools import bench, bench_cli, bench_daemon  # noqa: E402

HUEY_SETTINGS = {
    "default": [],
    "tuned": ["-d", "0.001", "-m", "0.001", "-b", "1.0"],
}
HUEY_WORKERS = 2


class HueyConsumer:
    """A `huey_consumer` process over a private SQLite file."""

    def __init__(self, db: Path, options: list[str]) -> None:
        self.db = db
        self.options = options
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        env = {**os.environ, "HUEY_BENCH_DB": str(self.db),
               "PYTHONPATH": os.pathsep.join([str(HERE), os.environ.get("PYTHONPATH", "")])}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "huey.bin.huey_consumer", "huey_tasks.huey",
             "-w", str(HUEY_WORKERS), "-k", "process", "-q", *self.options],
            env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=open(self.db.with_suffix(".log"), "wb"))  # noqa: SIM115

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGINT)  # Huey's graceful stop
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()

    def pids(self) -> list[int]:
        children = Path(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children").read_text()
        return [self.proc.pid, *(int(pid) for pid in children.split())]


def huey_tasks_on(db: Path):
    """The task module, over this database (it reads the path once, when first imported);
    emptied, so each setting starts from nothing."""
    os.environ["HUEY_BENCH_DB"] = str(db)
    import huey_tasks

    huey_tasks.huey.flush()
    return huey_tasks


def huey_drain(db: Path, options: list[str], runs: int) -> tuple[dict, HueyConsumer]:
    tasks = huey_tasks_on(db)
    start = time.perf_counter()
    results = [tasks.noop_stamped() for _ in range(runs)]
    enqueue_s = time.perf_counter() - start
    consumer = HueyConsumer(db, options)
    consumer.start()
    stamps = [r.get(blocking=True, timeout=120) for r in results]
    span = max(stamps) - min(stamps)
    return {"runs": runs, "runs_per_s": round((runs - 1) / span, 1),
            "enqueue_runs_per_s": round(runs / enqueue_s, 1)}, consumer


def huey_dispatch(samples: int) -> list[float]:
    import huey_tasks

    latencies = []
    for _ in range(samples):
        submitted = time.monotonic()
        started = huey_tasks.stamp().get(blocking=True, timeout=60)
        latencies.append((started - submitted) * 1000)
    return latencies


def idle_cpu(pids: list[int], seconds: float) -> dict[str, Any]:
    before = sum(bench._proc_counters(pid)["cpu_s"] for pid in pids)
    wakeups = sum(bench._proc_counters(pid)["wakeups"] for pid in pids)
    time.sleep(seconds)
    cpu = sum(bench._proc_counters(pid)["cpu_s"] for pid in pids) - before
    wakeups = sum(bench._proc_counters(pid)["wakeups"] for pid in pids) - wakeups
    return {"seconds": seconds, "cpu_s": round(cpu, 3),
            "cpu_percent_of_core": round(100 * cpu / seconds, 3), "wakeups": wakeups}


def measure_huey(root: Path, name: str, sizes: argparse.Namespace) -> dict[str, Any]:
    drain, consumer = huey_drain(root / "huey.db", HUEY_SETTINGS[name], sizes.drain)
    try:
        huey_dispatch(3)  # warm: both workers have run a task
        dispatch = bench.distribution(huey_dispatch(sizes.dispatch))
        time.sleep(1)
        idle = idle_cpu(consumer.pids(), sizes.idle)
    finally:
        consumer.stop()
    return {"dispatch_ms": dispatch, "drain": drain, "idle": idle}


def measure_easyflow(root: Path, sizes: argparse.Namespace) -> dict[str, Any]:
    with bench_daemon.running_daemon(root / "easyflow", realtime_workers=HUEY_WORKERS) as daemon:
        bench.warm_up(daemon)
        drain = bench.drain_throughput(daemon, sizes.drain, command=False)
        dispatch = bench.distribution(bench.dispatch_latency(daemon, sizes.dispatch,
                                                            command=False))
        time.sleep(1)
        processes = daemon.processes()
        idle = idle_cpu([pid for group in processes.values() for pid in group], sizes.idle)
    enqueue = bench_cli.library_enqueue(root, sizes.drain, repeats=1)
    drain["enqueue_runs_per_s"] = enqueue["runs_per_s"]
    return {"dispatch_ms": dispatch, "drain": drain, "idle": idle}


def comparison_rows(results: dict[str, Any]) -> list[tuple[str, str, Any]]:
    """(label, unit, path) of each figure compared."""
    return [
        ("dispatch p50", "ms", ("dispatch_ms", "p50")),
        ("dispatch p95", "ms", ("dispatch_ms", "p95")),
        ("dispatch p99", "ms", ("dispatch_ms", "p99")),
        ("drain, no-op tasks", "runs/s", ("drain", "runs_per_s")),
        ("enqueue", "runs/s", ("drain", "enqueue_runs_per_s")),
        ("idle CPU", "% of a core", ("idle", "cpu_percent_of_core")),
        ("idle wake-ups", "", ("idle", "wakeups")),
    ]


def pick(figures: dict[str, Any], path: tuple) -> Any:
    for key in path:
        figures = figures[key]
    return figures


def ratio(ours: float, theirs: float) -> str:
    return f"{ours / theirs:.2f}" if theirs else "-"


def print_table(results: dict[str, Any]) -> None:
    header = f"{'figure':22} {'easyflow':>12} {'huey default':>13} {'ratio':>7} " \
             f"{'huey tuned':>11} {'ratio':>7}"
    print(header)
    print("-" * len(header))
    for label, unit, path in comparison_rows(results):
        ours = pick(results["easyflow"], path)
        default = pick(results["huey_default"], path)
        tuned = pick(results["huey_tuned"], path)
        print(f"{label:22} {ours:>12g} {default:>13g} {ratio(ours, default):>7} "
              f"{tuned:>11g} {ratio(ours, tuned):>7}  {unit}")
    print(f"\nratio = easyflow / Huey; samples: dispatch {results['sizes']['dispatch']}, drain "
          f"{results['sizes']['drain']}, idle {results['sizes']['idle']} s; load average "
          f"{results['load_average_before']} before, {results['load_average_after']} after")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer samples (about a minute)")
    parser.add_argument("--json", action="store_true", help="print one JSON document")
    args = parser.parse_args()
    sizes = argparse.Namespace(dispatch=30 if args.quick else 200,
                               drain=500 if args.quick else 5000,
                               idle=5 if args.quick else 30)
    results: dict[str, Any] = {"sizes": vars(sizes), "load_average_before": bench.load_average()}
    with tempfile.TemporaryDirectory(prefix="easyflow-vs-huey-") as tmp:
        root = Path(tmp)
        for name in HUEY_SETTINGS:
            print(f"huey {name}…", file=sys.stderr)
            results[f"huey_{name}"] = measure_huey(root, name, sizes)
        print("easyflow…", file=sys.stderr)
        results["easyflow"] = measure_easyflow(root, sizes)
    results["load_average_after"] = bench.load_average()
    if args.json:
        print(json.dumps(results, indent=2))
    else:
        print_table(results)


if __name__ == "__main__":
    main()
