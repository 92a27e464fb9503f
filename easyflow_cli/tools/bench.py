"""`easyflow bench`: measure this box, in a throwaway state directory with its own daemon.

Each measurement is a function that returns plain figures (dicts of numbers); `run_bench`
runs them all and returns one JSON-shaped document. Nothing here prints.

What is measured, precisely:

- dispatch latency, callable step: from the start of the transaction that submits a real-time
  run (its INSERT and COMMIT are included; then the bench wakes the daemon over its
  socket, as `run --now` does) to the first instruction of the step's function in a warm
  worker, which reads `time.monotonic()` (CLOCK_MONOTONIC is one clock for all processes).
- dispatch latency, command step (`/bin/true`): from the same moment to the run's recorded
  `started_at`, which the worker takes immediately before it opens the run's log and forks the
  step; fork+exec of the program itself comes on top.
- drain: N no-op runs inserted in one transaction, the daemon woken; runs/s from the start of
  that transaction to the last run's `finished_at` (enqueue → claim → execute → record).
- idle: CPU time (utime+stime from /proc/PID/stat, clock ticks) of the daemon and its workers
  over an idle period with one schedule an hour away and nothing queued; voluntary context
  switches over the same period count their wake-ups; VmRSS of each process.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from easyflow_cli.core.model import Mode, PoolName, Trigger
from easyflow_cli.core.paths import run_log_path
from easyflow_cli.core.planning import PlannedRun, QueuePolicy, plan_run
from easyflow_cli.core.spec import WorkflowSpec, parse_workflow_text
from easyflow_cli.core.stats import median, percentile
from easyflow_cli.core.timeutil import utcnow
from easyflow_cli.runtime.client import daemon_status, wake
from easyflow_cli.storage.sqlite_queue import SqliteRunQueue
from easyflow_cli.storage.store import CHECKPOINT_WHEN_QUIET_S, Store
from easyflow_cli.tools.bench_steps import BURN_MARK, STAMP_MARK
from easyflow_cli.tools.local_daemon import daemon_environment, start_daemon, stop_daemon

ECO_BACKLOG = 10_000
BURN_ITERATIONS = 3_000_000
ECO_SPIN_SECONDS = "0.05"
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")

Progress = Callable[[str], None]  # told what is being measured next, for the user to see

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
    "bench-noop": f'[[steps]]\ncall = "{STEPS}:noop"\n',
    "bench-burn": f'[[steps]]\ncall = "{STEPS}:burn"\nargs = ["{BURN_ITERATIONS}"]\n',
    "bench-eco-spin": f'execution_mode = "eco"\n[[steps]]\ncall = "{STEPS}:spin"\n'
                      f'args = ["{ECO_SPIN_SECONDS}"]\n',
    "bench-hourly": '[[steps]]\nrun = ["/bin/true"]\n[[schedules]]\nevery = "1h"\n',
}


class BenchError(RuntimeError):
    pass


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

    @classmethod
    def for_mode(cls, quick: bool) -> BenchSizes:
        if quick:
            return cls(dispatch_samples=20, drain_callable_runs=300, drain_command_runs=100,
                       idle_seconds=3, library_enqueue_runs=10_000, cli_samples=3,
                       cli_bulk_runs=2000, report_runs=20_000, isolation_samples=3)
        return cls(dispatch_samples=300, drain_callable_runs=5000, drain_command_runs=2000,
                   idle_seconds=60, library_enqueue_runs=100_000, cli_samples=20,
                   cli_bulk_runs=10_000, report_runs=1_000_000, isolation_samples=10)


# --------------------------------------------------------------------------- figures


def distribution(samples: list[float], places: int = 3) -> dict[str, Any]:
    """Median and nearest-rank percentiles of a list of samples, with their count."""
    ordered = sorted(samples)
    if not ordered:
        return {"samples": 0}
    return {"samples": len(ordered), "median": round(median(ordered), places),
            **{f"p{q}": round(percentile(ordered, q), places) for q in (50, 95, 99)},
            "min": round(ordered[0], places), "max": round(ordered[-1], places)}


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


# --------------------------------------------------------------------------- the daemon


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


# --------------------------------------------------------------------------- measurements


def warm_up(daemon: BenchDaemon) -> None:
    """Every real-time worker imports the bench steps once before anything is timed."""
    for workflow in ("bench-stamp", "bench-noop", "bench-true", "bench-burn"):
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
            latencies.append((_marked_value(daemon, run_id, STAMP_MARK) - submitted_mono) * 1000)
    return latencies


def _marked_value(daemon: BenchDaemon, run_id: int, mark: str) -> float:
    for line in run_log_path(daemon.home, run_id).read_text().splitlines():
        if line.startswith(mark + " "):
            return float(line.split()[1])
    raise BenchError(f"run {run_id} printed no {mark!r} line")


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
        durations.append(_marked_value(daemon, ids[0], BURN_MARK))
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


def cli_command() -> list[str]:
    """The installed `easyflow` script next to this Python, else `python -m easyflow_cli`."""
    script = Path(sys.executable).parent / "easyflow"
    return [str(script)] if script.exists() else [sys.executable, "-m", "easyflow_cli"]


def cli_wall_times(args: list[str], home: Path, samples: int) -> list[float]:
    """Milliseconds each whole `easyflow ARGS` process takes, one after another."""
    times = []
    for _ in range(samples):
        start = time.perf_counter()
        done = subprocess.run(cli_command() + args, env=daemon_environment(home),
                              stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE)
        times.append((time.perf_counter() - start) * 1000)
        if done.returncode != 0:
            raise BenchError(f"easyflow {' '.join(args)} failed: {done.stderr.decode()[-300:]}")
    return times


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


SYNTHETIC_COLUMNS = (
    "workflow", "trigger", "mode", "mode_reason", "cost_priority", "priority_rank", "state",
    "enqueued_at", "claimed_at", "started_at", "finished_at", "duration_s", "cpu_user_s",
    "cpu_system_s", "energy_j", "queue_wait_s", "off_peak", "deadline_met", "pool", "exit_code",
)
# mode, trigger, mode_reason, and the step its runs' queue waits grow by (seconds).
SYNTHETIC_MODES = (("real-time", "manual", "manual", 0.01),
                   ("balanced", "schedule", "default", 0.5), ("eco", "schedule", "schedule", 60.0))


def synthetic_runs(count: int, now: datetime) -> Iterator[tuple]:
    """Finished runs spread over the last 30 days, across modes, workflows, tariffs, queue
    waits, deadlines and measured energy; a few ran in the foreground."""
    # Naive UTC and precomputed steps: to_iso on aware datetimes would slow the seeding markedly.
    base = now.astimezone(UTC).replace(tzinfo=None)
    minutes = [base - timedelta(minutes=m) for m in range(30 * 24 * 60)]
    durations = [timedelta(seconds=0.5 + d / 10) for d in range(100)]
    waits = [[timedelta(seconds=unit * w) for w in range(37)] for *_, unit in SYNTHETIC_MODES]
    for i in range(count):
        mode, trigger, reason, wait_unit = SYNTHETIC_MODES[i % 3]
        finished = minutes[i % len(minutes)]
        started = finished - durations[i % 100]
        begun = started.isoformat(timespec="microseconds") + "Z"
        cpu_user = 0.2 + (i % 7) / 10
        yield (f"wf-{i % 50}", trigger, mode, reason, "normal", 1, "succeeded",
               (started - waits[i % 3][i % 37]).isoformat(timespec="microseconds") + "Z",
               begun, begun, finished.isoformat(timespec="microseconds") + "Z",
               0.5 + (i % 100) / 10, cpu_user, 0.05, cpu_user * 20 if i % 4 == 0 else None,
               wait_unit * (i % 37), i % 2, (i % 20 == 0) if i % 10 == 0 else None,
               PoolName.FOREGROUND.value if i % 997 == 0 else mode, 0)


# Each report as the CLI is asked for it, over the whole history and over a filtered slice.
REPORT_COMMANDS = {
    "costs": ["costs"],
    "costs_by_workflow": ["costs", "--by", "workflow"],
    "costs_by_day": ["costs", "--by", "day"],
    "latency": ["latency"],
    "pools": ["pools"],
    "costs_by_day_filtered": ["costs", "--by", "day", "--since", "7d", "--until", "1d",
                              "--workflow", "wf-7"],
    "latency_filtered": ["latency", "--since", "7d", "--until", "1d", "--workflow", "wf-7"],
    "pools_filtered": ["pools", "--since", "7d", "--until", "1d", "--workflow", "wf-7"],
}


def seed_report_history(home: Path, runs: int) -> float:
    """Seed `runs` synthetic finished runs into a fresh state directory; returns runs/s."""
    with Store.open(home) as store:
        start = time.perf_counter()
        SqliteRunQueue(store).insert_rows(SYNTHETIC_COLUMNS,
                                          synthetic_runs(runs, datetime.now(UTC)))
        return runs / (time.perf_counter() - start)


def reports_at_scale(root: Path, runs: int, cli_samples: int) -> dict[str, Any]:
    """Time `report costs` through the library, and every report as a whole `--json` CLI
    process, over `runs` synthetic finished runs (median seconds)."""
    from easyflow_cli.core.config import load_config
    from easyflow_cli.core.costs import Prices
    from easyflow_cli.reporting.accounting import Period, cost_sums
    from easyflow_cli.reporting.reports import cost_report

    home = root / "report-home"
    generate_rate = seed_report_history(home, runs)
    config = load_config(root / "easyflow.toml" if (root / "easyflow.toml").exists() else None)
    library = []
    with Store.open(home) as store:
        for _ in range(3):
            start = time.perf_counter()
            sums = cost_sums(store, Period(None, None), "mode")
            cost_report(sums, Prices.from_config(config), config.costs.watts_per_core, "mode",
                        {"since": None, "until": None, "workflow": None})
            library.append(time.perf_counter() - start)
    cli = {name: round(median(
               cli_wall_times(["report", *args, "--json"], home, cli_samples)) / 1000, 3)
           for name, args in REPORT_COMMANDS.items()}
    return {"runs": runs, "generate_runs_per_s": round(generate_rate, 1),
            "library_s": round(median(library), 3), "cli_s": cli}


# --------------------------------------------------------------------------- the whole bench


def run_bench(quick: bool = False, root: Path | None = None,
              progress: Progress = lambda message: None) -> dict[str, Any]:
    """Every measurement, in a throwaway state directory; returns the document `--json` prints."""
    sizes = BenchSizes.for_mode(quick)
    began, ticks = time.monotonic(), cpu_ticks()
    with contextlib.ExitStack() as stack:
        if root is None:
            root = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="easyflow-bench-")))
        document: dict[str, Any] = {"quick": quick, "machine": _machine()}
        with running_daemon(root) as daemon:
            progress("warming up the daemon")
            warm_up(daemon)
            document.update(_with_daemon(daemon, sizes, progress))
        progress("enqueue rate through the library")
        document["enqueue"]["library_bulk"] = library_enqueue(root, sizes.library_enqueue_runs)
        progress(f"reports over {sizes.report_runs:,} runs")
        document["reports"] = reports_at_scale(root, sizes.report_runs,
                                               max(1, sizes.cli_samples // 6))
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
    drain = {"callable": drain_throughput(daemon, sizes.drain_callable_runs, command=False),
             "command": drain_throughput(daemon, sizes.drain_command_runs, command=True)}
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


def _machine() -> dict[str, Any]:
    return {"cpus": os.cpu_count(), "python": sys.version.split()[0],
            # Without cached bytecode every CLI start compiles easyflow's modules again.
            "bytecode_cache": not sys.dont_write_bytecode,
            "load_average_before": load_average()}


# The figure (a path into the document), what it means, and the target on a 2-core box.
TARGETS = (
    (("dispatch_latency_ms", "eco_backlog", "callable", "p50"), "dispatch p50, callable, backlog",
     "<=", 1.0, "ms"),
    (("dispatch_latency_ms", "eco_backlog", "callable", "p99"), "dispatch p99, callable, backlog",
     "<=", 3.0, "ms"),
    (("drain", "callable", "runs_per_s"), "drain, callable no-op", ">=", 8000, "runs/s"),
    (("drain", "command", "runs_per_s"), "drain, /bin/true", ">=", 2500, "runs/s"),
    (("enqueue", "library_bulk", "runs_per_s"), "bulk enqueue", ">=", 20000, "runs/s"),
    (("enqueue", "cli_bulk", "runs_per_s"), "bulk submit, runs/s through one CLI", ">=", 1000,
     "runs/s"),
    (("cli_start_ms", "help", "median"), "easyflow --help", "<=", 200, "ms"),
    (("cli_start_ms", "run_now_no_wait", "median"), "run --now --no-wait", "<=", 250, "ms"),
    (("idle_daemon", "cpu_percent_of_core"), "idle daemon CPU", "<=", 0.1, "% of a core"),
    (("idle_daemon", "daemon_rss_mb"), "idle daemon RSS", "<=", 60, "MB"),
    (("reports", "library_s"), "report costs, library", "<=", 1.0, "s"),
    *((("reports", "cli_s", name), f"report {' '.join(args)} (CLI)", "<=", 1.0, "s")
      for name, args in REPORT_COMMANDS.items()),
    (("isolation", "ratio"), "CPU-bound step, eco saturating / idle", "<=", 1.10, "×"),
)


def check_targets(document: dict[str, Any]) -> list[dict[str, Any]]:
    """Each target with the measured value and whether it was met."""
    checked = []
    for path, label, op, target, unit in TARGETS:
        value: Any = document
        for key in path:
            value = value.get(key) if isinstance(value, dict) else None
        met = None if value is None else (value <= target if op == "<=" else value >= target)
        checked.append({"figure": label, "value": value, "target": f"{op} {target:g} {unit}",
                        "met": met})
    return checked


def as_json(document: dict[str, Any]) -> str:
    return json.dumps(document, indent=2)
