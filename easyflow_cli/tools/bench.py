"""`easyflow bench`: measure this box, in a throwaway state directory with its own daemon
(bench_daemon.py); whole CLI processes are timed by bench_cli.py, reports by bench_reports.py.

Each measurement is a function that returns plain figures (dicts of numbers); `run_bench`
runs them all and returns one JSON-shaped document. Nothing here prints.

What is measured, precisely:

- dispatch latency, callable step: from the start of the transaction that submits a real-time
  run (its INSERT and COMMIT are included; then the bench wakes the daemon over its
  socket, as `run --now` does) to the first instruction of the step's function in a warm
  worker, which reads `time.monotonic()` (CLOCK_MONOTONIC is one clock for all processes).
- dispatch latency, command step (`/bin/true`): from the same moment to the run's recorded
  `started_at`, which the worker takes immediately before it starts the run's first step.
- command step, first instruction: from the same moment to the step's own reading of the clock
  (`date +%s.%N`, bench_spawn.py), with that command's own start cost measured beside it.
- spawn ceiling: two posix_spawn loops of /bin/true side by side (bench_spawn.py), measured
  in turn with the /bin/true drains (ceiling, drain, ceiling, drain, ceiling); the median
  drain's share of the median ceiling.
- drain: N no-op runs inserted in one transaction, the daemon woken; runs/s from the start of
  that transaction to the last run's `finished_at` (enqueue → claim → execute → record).
- growth (bench_growth.py): dispatch latency of a callable step as above, and the daemon's
  CPU time per dispatch, with more and more eco runs waiting for their window and with more
  and more schedules: flat curves mean a wake-up costs the same however much waits.
- why: whole `easyflow why RUN_ID` processes over 10,000 finished runs (bench_why.py), for a
  finished run and a queued one: the first process (cold) and the next ones (warm), wall time
  and the CPU time (user + system) each process used.
- idle: CPU time (utime+stime from /proc/PID/stat, clock ticks) of the daemon and its workers
  over an idle period with one schedule an hour away and nothing queued; voluntary context
  switches over the same period count their wake-ups; VmRSS of each process.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from easyflow_cli.core.cluster_config import ClusterConfig
from easyflow_cli.core.model import Mode, Trigger
from easyflow_cli.core.stats import median
from easyflow_cli.storage.store import CHECKPOINT_WHEN_QUIET_S
from easyflow_cli.tools.bench_cli import (
    cache_bytecode,
    cli_bulk_submit,
    cli_wall_times,
    library_enqueue,
)
from easyflow_cli.tools.bench_daemon import (
    BURN_ITERATIONS,
    BenchDaemon,
    BenchError,
    running_daemon,
)
from easyflow_cli.tools.bench_figures import distribution
from easyflow_cli.tools.bench_growth import GrowthSizes, growth_curves
from easyflow_cli.tools.bench_reports import REPORT_COMMANDS, reports_at_scale
from easyflow_cli.tools.bench_spawn import (
    clock_command_own_start,
    command_first_instruction,
    spawn_ceiling,
)
from easyflow_cli.tools.bench_steps import BURN_MARK, STAMP_MARK
from easyflow_cli.tools.bench_why import WHY_HISTORY, why_at_scale

ECO_BACKLOG = 10_000
COMMAND_DRAINS = 2  # /bin/true drains, each between two measures of the spawn ceiling
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")

Progress = Callable[[str], None]  # told what is being measured next, for the user to see


@dataclass(frozen=True)
class BenchSizes:
    """How much of each measurement: `quick` fits in under 20 s, the full run takes minutes."""

    dispatch_samples: int
    drain_callable_runs: int
    drain_command_runs: int
    idle_seconds: float
    library_enqueue_runs: int
    cli_samples: int
    cli_bulk_runs: int
    report_runs: int
    isolation_samples: int
    ceiling_seconds: float = 1.0
    why_runs: int = WHY_HISTORY

    @classmethod
    def for_mode(cls, quick: bool) -> BenchSizes:
        if quick:
            return cls(dispatch_samples=20, drain_callable_runs=300, drain_command_runs=100,
                       idle_seconds=3, library_enqueue_runs=10_000, cli_samples=3,
                       cli_bulk_runs=2000, report_runs=20_000, isolation_samples=3)
        return cls(dispatch_samples=300, drain_callable_runs=5000, drain_command_runs=2000,
                   idle_seconds=60, library_enqueue_runs=100_000, cli_samples=20,
                   cli_bulk_runs=10_000, report_runs=1_000_000, isolation_samples=10,
                   ceiling_seconds=3.0)


# --------------------------------------------------------------------------- figures


def load_average() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def cpu_ticks() -> dict[str, int]:
    """The whole machine's CPU time so far, from /proc/stat (clock ticks)."""
    fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]
    names = ("user", "nice", "system", "idle", "iowait", "irq", "softirq", "steal")
    return dict(zip(names, (int(f) for f in fields), strict=False))


def steal_percent(before: dict[str, int], after: dict[str, int]) -> float:
    """Share of CPU time the hypervisor gave to other machines meanwhile: on a shared host,
    every figure here is slower by about that much, whatever easyflow does."""
    total = sum(after.values()) - sum(before.values())
    return round(100 * (after["steal"] - before["steal"]) / total, 1) if total else 0.0


# --------------------------------------------------------------------------- measurements


def warm_up(daemon: BenchDaemon) -> None:
    """Every real-time worker imports the bench steps once before anything is timed."""
    for workflow in ("bench-stamp", "bench-noop", "bench-true", "bench-clock", "bench-burn"):
        ids, _, _ = daemon.submit(workflow, count=10)
        if not daemon.wait_finished(ids, timeout=60):
            raise BenchError("warm-up runs did not finish within a minute")


def dispatch_latency(daemon: BenchDaemon, samples: int, *, command: bool) -> list[float]:
    """Milliseconds from submission to the step's start, one real-time run at a time."""
    latencies = []
    for _ in range(samples):
        ids, submitted_mono, submitted_wall = daemon.submit(
            "bench-true" if command else "bench-stamp")
        if not daemon.wait_finished(ids, timeout=30):
            raise BenchError(f"run {ids[0]} did not finish within 30 s")
        run_id = ids[0]
        if command:
            started = daemon.store.queue.get(run_id).started_at
            if started is None:
                raise BenchError(f"run {run_id} finished without a start time")
            latencies.append((started.timestamp() - submitted_wall) * 1000)
        else:
            latencies.append((daemon.marked_value(run_id, STAMP_MARK) - submitted_mono) * 1000)
    return latencies


def drain_throughput(daemon: BenchDaemon, runs: int, *, command: bool) -> dict[str, Any]:
    """No-op runs per second from one bulk commit to the last run's `finished_at`."""
    ids, _, submitted_wall = daemon.submit("bench-true" if command else "bench-noop", runs)
    finished = daemon.wait_finished(ids, timeout=max(60.0, runs / 20), poll=0.02)
    last = daemon.store.queue.last_finished_at(ids)
    if not finished or last is None:
        raise BenchError(f"{runs} runs did not drain in time")
    seconds = last.timestamp() - submitted_wall
    return {"runs": runs, "seconds": round(seconds, 3), "runs_per_s": round(runs / seconds, 1)}


def cpu_bound_durations(daemon: BenchDaemon, samples: int) -> list[float]:
    """Seconds a fixed-size CPU-bound real-time step takes, as the step itself measures it."""
    durations = []
    for _ in range(samples):
        ids, _, _ = daemon.submit("bench-burn")
        if not daemon.wait_finished(ids, timeout=60):
            raise BenchError(f"run {ids[0]} did not finish within a minute")
        durations.append(daemon.marked_value(ids[0], BURN_MARK))
    return durations


def idle_cost(daemon: BenchDaemon, seconds: float) -> dict[str, Any]:
    """CPU, wake-ups and memory of the daemon and its workers while nothing is due.

    Measured from a second after the last activity: the daemon checkpoints its database once
    it has been quiet for CHECKPOINT_WHEN_QUIET_S, and that is the end of work, not idleness."""
    time.sleep(CHECKPOINT_WHEN_QUIET_S + 0.5)
    processes = daemon.processes()
    pids = [pid for group in processes.values() for pid in group]
    before = {pid: _proc_counters(pid) for pid in pids}
    time.sleep(seconds)
    after = {pid: _proc_counters(pid) for pid in pids}
    groups: dict[str, dict[str, Any]] = {}
    for name, group in processes.items():
        cpu = sum(after[p]["cpu_s"] - before[p]["cpu_s"] for p in group)
        wakeups = sum(after[p]["wakeups"] - before[p]["wakeups"] for p in group)
        groups[name] = {"processes": len(group), "cpu_s": round(cpu, 3), "wakeups": wakeups,
                        "rss_mb": [round(after[p]["rss_kb"] / 1024, 1) for p in group]}
    total_cpu = sum(g["cpu_s"] for g in groups.values())
    return {
        "seconds": seconds,
        "cpu_s": round(total_cpu, 3),
        "cpu_percent_of_core": round(100 * total_cpu / seconds, 3),
        "cpu_resolution_s": round(1 / CLOCK_TICKS, 3),
        "wakeups": sum(g["wakeups"] for g in groups.values()),
        "daemon_rss_mb": groups["daemon"]["rss_mb"][0],
        "by_process": groups,
    }


def _proc_counters(pid: int) -> dict[str, float]:
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat[stat.rindex(")") + 2:].split()
    utime, stime = int(fields[11]), int(fields[12])  # fields 14 and 15 of proc(5)
    status = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        status[key] = value.split()
    return {"cpu_s": (utime + stime) / CLOCK_TICKS,
            "wakeups": int(status["voluntary_ctxt_switches"][0]),
            "rss_kb": int(status["VmRSS"][0])}


def eco_backlog(daemon: BenchDaemon, runs: int, timeout: float = 30.0) -> dict[str, Any]:
    """Queue `runs` CPU-bound eco runs and wait until every eco worker is busy with them."""
    ids, _, _ = daemon.submit("bench-eco-spin", runs, trigger=Trigger.SCHEDULE)
    deadline = time.monotonic() + timeout
    while True:
        eco = daemon.status()["pools"][Mode.ECO.value]
        if eco["busy"] >= eco["size"]:
            return {"eco_queued": runs, "eco_busy_workers": eco["busy"], "first_id": ids[0]}
        if time.monotonic() > deadline:
            raise BenchError("the eco pool did not get busy")
        time.sleep(0.02)


# --------------------------------------------------------------------------- the whole bench


def run_bench(quick: bool = False, root: Path | None = None,
              progress: Progress = lambda message: None,
              growth: GrowthSizes | None = None,
              report_runs: int | None = None,
              cluster: ClusterConfig | None = None) -> dict[str, Any]:
    """Every measurement, in a throwaway state directory; returns the document `--json` prints.
    `growth`: the sizes of the growth curves (by default, those of a full or quick bench);
    `report_runs`: the history the reports are timed over, instead of the mode's.
    `cluster`: also dispatch and drain through that cluster's engine (`bench_cluster.py`)."""
    sizes = BenchSizes.for_mode(quick)
    if report_runs is not None:
        sizes = replace(sizes, report_runs=report_runs)
    growth = growth or GrowthSizes.parse(None, None, quick=quick)
    began, ticks = time.monotonic(), cpu_ticks()
    with contextlib.ExitStack() as stack:
        if root is None:
            root = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="easyflow-bench-")))
        document: dict[str, Any] = {"quick": quick, "machine": _machine()}
        with running_daemon(root) as daemon:
            progress("warming up the daemon")
            warm_up(daemon)
            document.update(_with_daemon(daemon, sizes, progress))
        document["growth"] = growth_curves(root / "growth", growth, sizes.dispatch_samples,
                                           progress)
        progress("enqueue rate through the library")
        document["enqueue"]["library_bulk"] = library_enqueue(root, sizes.library_enqueue_runs)
        progress(f"reports over {sizes.report_runs:,} runs")
        document["reports"] = reports_at_scale(root, sizes.report_runs,
                                               max(1, sizes.cli_samples // 6))
        progress(f"why RUN_ID over {sizes.why_runs:,} runs")
        document["why"] = why_at_scale(root, sizes.cli_samples, sizes.why_runs)
        if cluster is not None:
            from easyflow_cli.tools.bench_cluster import cluster_figures

            document["cluster"] = cluster_figures(
                cluster, root / "cluster", samples=sizes.dispatch_samples,
                drain_runs=sizes.drain_callable_runs // 5, progress=progress)
        document["machine"]["load_average_after"] = load_average()
        document["machine"]["cpu_steal_percent"] = steal_percent(ticks, cpu_ticks())
        document["elapsed_s"] = round(time.monotonic() - began, 1)
    document["targets"] = check_targets(document)
    return document


def _with_daemon(daemon: BenchDaemon, sizes: BenchSizes, progress: Progress) -> dict[str, Any]:
    n = sizes.dispatch_samples
    progress(f"idle daemon for {sizes.idle_seconds:g} s")
    idle = idle_cost(daemon, sizes.idle_seconds)
    progress("dispatch latency, idle")
    dispatch = {"idle": {"callable": distribution(dispatch_latency(daemon, n, command=False)),
                         "command": distribution(dispatch_latency(daemon, n, command=True))}}
    progress("CPU-bound step on an idle box")
    burn_idle = cpu_bound_durations(daemon, sizes.isolation_samples)
    progress("drain throughput")
    drain = {"callable": drain_throughput(daemon, sizes.drain_callable_runs, command=False)}
    progress("/bin/true drains in turn with measures of the box's spawn ceiling")
    drain["command"] = _beside_ceiling(daemon, sizes)
    progress("CLI start and enqueue")
    help_ms = cli_wall_times(["--help"], daemon.home, sizes.cli_samples)
    run_ms = cli_wall_times(["run", "bench-noop", "--now", "--no-wait"], daemon.home,
                            sizes.cli_samples)
    progress(f"bulk submit of {sizes.cli_bulk_runs:,} runs through one CLI process")
    cli_bulk = cli_bulk_submit(daemon, sizes.cli_bulk_runs)
    progress(f"dispatch latency with {ECO_BACKLOG:,} eco runs queued")
    backlog = eco_backlog(daemon, ECO_BACKLOG)
    dispatch["eco_backlog"] = {
        **backlog,
        "callable": distribution(dispatch_latency(daemon, n, command=False)),
        "command": distribution(dispatch_latency(daemon, n, command=True)),
        "command_first_instruction": distribution(command_first_instruction(daemon, n)),
        "clock_command_own_start": distribution(clock_command_own_start(n)),
    }
    progress("CPU-bound step while eco work saturates every core")
    burn_busy = cpu_bound_durations(daemon, sizes.isolation_samples)
    return {
        "dispatch_latency_ms": dispatch,
        "drain": drain,
        "enqueue": {"cli": {"runs": len(run_ms),
                            "runs_per_s": round(1000 * len(run_ms) / sum(run_ms), 1)},
                    "cli_bulk": cli_bulk},
        "cli_start_ms": {"help": distribution(help_ms, 1),
                         "run_now_no_wait": distribution(run_ms, 1)},
        "idle_daemon": idle,
        "isolation": {
            "iterations": BURN_ITERATIONS,
            "idle_s": distribution(burn_idle, 4), "eco_saturated_s": distribution(burn_busy, 4),
            "ratio": round(median(burn_busy) / median(burn_idle), 3),
        },
    }


def _beside_ceiling(daemon: BenchDaemon, sizes: BenchSizes) -> dict[str, Any]:
    """The /bin/true drains and the spawn ceiling, taken in turn (ceiling, drain, ceiling, …,
    ceiling), and the median drain's share of the median ceiling: on a shared box the load
    changes from one second to the next, and a share of one ceiling measure swings with it."""
    ceilings = [spawn_ceiling(sizes.ceiling_seconds)]
    drains = []
    for _ in range(COMMAND_DRAINS):
        drains.append(drain_throughput(daemon, sizes.drain_command_runs, command=True))
        ceilings.append(spawn_ceiling(sizes.ceiling_seconds))
    rates = [drain["runs_per_s"] for drain in drains]
    ceiling = round(median(ceilings), 1)
    rate = round(median(rates), 1)
    return {"runs": sizes.drain_command_runs, "runs_per_s": rate, "drains_runs_per_s": rates,
            "spawn_ceiling_runs_per_s": ceiling, "spawn_ceilings_runs_per_s": ceilings,
            "percent_of_ceiling": round(100 * rate / ceiling, 1) if ceiling else None}


def _machine() -> dict[str, Any]:
    return {"cpus": os.cpu_count(), "python": sys.version.split()[0],
            # Without cached bytecode every CLI start would compile easyflow's modules again:
            # they are compiled first, as pip does at install, and the timed processes use it.
            "bytecode_cache": cache_bytecode(),
            "load_average_before": load_average()}


# The figure (a path into the document), what it means, and the target on a 2-core box.
TARGETS = (
    (("dispatch_latency_ms", "eco_backlog", "callable", "p50"), "dispatch p50, callable, backlog",
     "<=", 1.0, "ms"),
    (("dispatch_latency_ms", "eco_backlog", "callable", "p99"), "dispatch p99, callable, backlog",
     "<=", 3.0, "ms"),
    (("drain", "callable", "runs_per_s"), "drain, callable no-op", ">=", 8000, "runs/s"),
    (("dispatch_latency_ms", "eco_backlog", "command_first_instruction", "p50"),
     "command step's first instruction p50, backlog", "<=", 2.0, "ms"),
    (("dispatch_latency_ms", "eco_backlog", "command_first_instruction", "p99"),
     "command step's first instruction p99, backlog", "<=", 5.0, "ms"),
    (("drain", "command", "runs_per_s"), "drain, /bin/true", ">=", 2500, "runs/s"),
    (("drain", "command", "percent_of_ceiling"), "drain, /bin/true, share of spawn ceiling",
     ">=", 50, "%"),
    (("enqueue", "library_bulk", "runs_per_s"), "bulk enqueue", ">=", 20000, "runs/s"),
    (("enqueue", "cli_bulk", "runs_per_s"), "bulk submit, runs/s through one CLI", ">=", 1000,
     "runs/s"),
    (("cli_start_ms", "help", "median"), "easyflow --help", "<=", 200, "ms"),
    (("cli_start_ms", "run_now_no_wait", "median"), "run --now --no-wait", "<=", 250, "ms"),
    *((("why", kind, "wall_ms", "median"), f"why RUN_ID, {kind} run, {WHY_HISTORY:,} runs",
       "<=", 200, "ms") for kind in ("finished", "queued")),
    (("idle_daemon", "cpu_percent_of_core"), "idle daemon CPU", "<=", 0.1, "% of a core"),
    (("idle_daemon", "daemon_rss_mb"), "idle daemon RSS", "<=", 60, "MB"),
    (("reports", "library_s"), "report costs, library", "<=", 1.0, "s"),
    *((("reports", "cli_s", name), f"{' '.join(args)} (CLI)", "<=", 1.0, "s")
      for name, args in REPORT_COMMANDS.items()),
    (("isolation", "ratio"), "CPU-bound step, eco saturating / idle", "<=", 1.10, "×"),
    (("cluster", "dispatch_ms", "p50"), "cluster dispatch p50", "<=", 6.0, "ms"),
    (("cluster", "dispatch_ms", "p99"), "cluster dispatch p99", "<=", 20.0, "ms"),
    *((("growth", f"{curve}_{figure}_growth"), f"{what}, most {curve} / fewest", "<=", 1.10, "×")
      for curve in ("backlog", "schedules")
      for figure, what in (("p50", "dispatch p50"), ("cpu", "daemon CPU per dispatch"))),
)


def check_targets(document: dict[str, Any]) -> list[dict[str, Any]]:
    """Each target with the measured value and whether it was met."""
    checked = []
    for path, label, op, target, unit in TARGETS:
        if path[0] not in document:
            continue  # a part not measured in this run (`--cluster`)
        value: Any = document
        for key in path:
            value = value.get(key) if isinstance(value, dict) else None
        met = None if value is None else (value <= target if op == "<=" else value >= target)
        checked.append({"figure": label, "value": value, "target": f"{op} {target:g} {unit}",
                        "met": met})
    return checked


def as_json(document: dict[str, Any]) -> str:
    return json.dumps(document, indent=2)
