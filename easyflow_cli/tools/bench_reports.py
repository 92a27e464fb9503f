"""Reports at scale: a synthetic history of finished runs seeded in one go, then every report
timed through the library and as a whole `--json` CLI process; and a metrics scrape, through
the daemon's collector and as `easyflow metrics`."""

from __future__ import annotations

import functools
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from easyflow_cli.core.model import PoolName
from easyflow_cli.core.stats import median
from easyflow_cli.storage.sqlite_queue import insert_runs
from easyflow_cli.storage.store import Store
from easyflow_cli.storage.summaries import summarize_all
from easyflow_cli.tools.bench_cli import cli_process_times, cli_wall_times

if TYPE_CHECKING:
    from prometheus_client.registry import Collector

    from easyflow_cli.core.config import Config

SYNTHETIC_COLUMNS = (
    "workflow", "trigger", "mode", "mode_reason", "cost_priority", "priority_rank", "state",
    "enqueued_at", "claimed_at", "started_at", "finished_at", "duration_s", "cpu_user_s",
    "cpu_system_s", "energy_j", "queue_wait_s", "off_peak", "deadline_met", "pool", "exit_code",
)
# mode, trigger, mode_reason, and the step its runs' queue waits grow by (seconds).
SYNTHETIC_MODES = (("real-time", "manual", "manual", 0.01),
                   ("balanced", "schedule", "default", 0.5), ("eco", "schedule", "schedule", 60.0))
SYNTHETIC_SPAN = timedelta(days=30)


def synthetic_runs(count: int, now: datetime, span: timedelta = SYNTHETIC_SPAN
                   ) -> Iterator[tuple]:
    """Finished runs spread evenly over `span` up to `now`, oldest first (ids in finish order,
    as a real history's are), across modes, workflows, tariffs, queue waits, deadlines and
    measured energy; a few ran in the foreground."""
    # Naive UTC and precomputed steps: to_iso on aware datetimes would slow the seeding markedly.
    step = span / count
    finished = now.astimezone(UTC).replace(tzinfo=None) - step * count
    durations = [timedelta(seconds=0.5 + d / 10) for d in range(100)]
    waits = [[timedelta(seconds=unit * w) for w in range(37)] for *_, unit in SYNTHETIC_MODES]
    for i in range(count):
        mode, trigger, reason, wait_unit = SYNTHETIC_MODES[i % 3]
        finished += step
        started = finished - durations[i % 100]
        begun = started.isoformat(timespec="microseconds") + "Z"
        cpu_user = 0.2 + (i % 7) / 10
        yield (f"wf-{i % 50}", trigger, mode, reason, "normal", 1, "succeeded",
               (started - waits[i % 3][i % 37]).isoformat(timespec="microseconds") + "Z",
               begun, begun, finished.isoformat(timespec="microseconds") + "Z",
               0.5 + (i % 100) / 10, cpu_user, 0.05, cpu_user * 20 if i % 4 == 0 else None,
               wait_unit * (i % 37), i % 2, (i % 20 == 0) if i % 10 == 0 else None,
               PoolName.FOREGROUND.value if i % 997 == 0 else mode, 0)


# Runs that end between two metrics scrapes, in the bench.
NEW_RUNS = 1000

# The newest run's id, in a command's arguments.
NEWEST = "{newest}"

# Each command that reads the history, as the CLI is asked for it (with `--json`): the reports
# over the whole history, over a long period and over a filtered slice; and the commands that
# read a few runs of it.
REPORT_COMMANDS = {
    "costs": ["report", "costs"],
    "costs_by_workflow": ["report", "costs", "--by", "workflow"],
    "costs_by_day": ["report", "costs", "--by", "day"],
    "latency": ["report", "latency"],
    "pools": ["report", "pools"],
    "advise": ["report", "advise"],
    **{f"{name}_since_365d": ["report", name, "--since", "365d"]
       for name in ("costs", "latency", "pools", "advise")},
    "costs_by_day_filtered": ["report", "costs", "--by", "day", "--since", "7d", "--until", "1d",
                              "--workflow", "wf-7"],
    "latency_filtered": ["report", "latency", "--since", "7d", "--until", "1d",
                         "--workflow", "wf-7"],
    "pools_filtered": ["report", "pools", "--since", "7d", "--until", "1d", "--workflow", "wf-7"],
    "runs_list": ["runs", "list"],
    "runs_show": ["runs", "show", NEWEST],
    "why": ["why", NEWEST],
}


# Pages the seeding's connection caches (KiB when negative): the indexes it builds sort in
# memory instead of in temporary files.
SEED_CACHE = -256 * 1024


@dataclass(frozen=True)
class Seeding:
    """How long a seeded history took: its rows generated and inserted, the runs table's
    indexes built, the summaries added up (seconds)."""

    runs: int
    insert_s: float
    index_s: float
    summarize_s: float

    def as_dict(self) -> dict[str, Any]:
        total = self.insert_s + self.index_s + self.summarize_s
        return {"generate_runs_per_s": round(self.runs / self.insert_s, 1),
                "index_s": round(self.index_s, 1), "summarize_s": round(self.summarize_s, 1),
                "seed_s": round(total, 1)}


def seed_report_history(home: Path, runs: int) -> Seeding:
    """Seed `runs` synthetic finished runs into a fresh state directory, and summarize every
    hour that is over, as the daemon would have.

    The database is as a history written run by run leaves it (the same tables, indexes and
    summaries), built the fast way: a throwaway written with no rollback journal and no syncs,
    the runs in one transaction, the runs table's indexes built after the load (each sorted
    once instead of grown row by row), and the summaries added up once, by the daemon's own
    code, over all the hours. Then the database is set back in WAL mode, as easyflow opens it.
    """
    now = datetime.now(UTC)
    # Watched: without a journal, the store would take the write-ahead log's absence for a
    # deleted one.
    with Store.open(home, watched=True) as store, throwaway_writes(store):
        start = time.perf_counter()
        with without_run_indexes(store) as timer:
            insert_runs(store, SYNTHETIC_COLUMNS, synthetic_runs(runs, now))
            inserted = time.perf_counter()
        indexed = timer.ended
        with store.write() as conn:
            summarize_all(conn, now)
        return Seeding(runs, inserted - start, indexed - inserted, time.perf_counter() - indexed)


@contextmanager
def throwaway_writes(store: Store) -> Iterator[None]:
    """Writes with no rollback journal and no syncs inside (a crash leaves a database to throw
    away: the bench's seeding can afford it), and as easyflow makes them again on leaving."""
    store.conn.execute("PRAGMA journal_mode = OFF")
    store.conn.execute("PRAGMA synchronous = OFF")
    store.conn.execute(f"PRAGMA cache_size = {SEED_CACHE}")
    try:
        yield
    finally:
        store.conn.execute("PRAGMA journal_mode = WAL")
        store.conn.execute("PRAGMA synchronous = NORMAL")


@dataclass
class Timer:
    """When what a context timed ended (perf_counter seconds)."""

    ended: float = 0.0


@contextmanager
def without_run_indexes(store: Store) -> Iterator[Timer]:
    """The runs table's indexes dropped inside, and created again as they were on leaving;
    the timer holds when they were."""
    indexes = dict(store.conn.execute(
        "SELECT name, sql FROM sqlite_master WHERE type = 'index' AND tbl_name = 'runs'"
        " AND sql IS NOT NULL").fetchall())
    with store.write() as conn:
        for name in indexes:
            conn.execute(f"DROP INDEX {name}")
    timer = Timer()
    try:
        yield timer
    finally:
        with store.write() as conn:
            for sql in indexes.values():
                conn.execute(sql)
        timer.ended = time.perf_counter()


def reports_at_scale(root: Path, runs: int, cli_samples: int) -> dict[str, Any]:
    """Time `report costs` through the library, and every report as a whole `--json` CLI
    process, over `runs` synthetic finished runs (median seconds)."""
    from easyflow_cli.core.config import load_config
    from easyflow_cli.core.costs import Prices
    from easyflow_cli.reporting.accounting import Period, cost_sums
    from easyflow_cli.reporting.reports import cost_report

    home = root / "report-home"
    seeding = seed_report_history(home, runs)
    database_bytes = sum(path.stat().st_size for path in home.glob("easyflow.db*"))
    config = load_config(root / "easyflow.toml" if (root / "easyflow.toml").exists() else None)
    library = []
    with Store.open(home) as store:
        for _ in range(3):
            start = time.perf_counter()
            sums = cost_sums(store, Period(None, None), "mode")
            cost_report(sums, Prices.from_config(config), config.costs.watts_per_core, "mode",
                        {"since": None, "until": None, "workflow": None})
            library.append(time.perf_counter() - start)
    cli = {name: cli_seconds([arg.format(newest=runs) for arg in args] + ["--json"], home,
                             cli_samples)
           for name, args in REPORT_COMMANDS.items()}
    return {"runs": runs, **seeding.as_dict(), "database_bytes": database_bytes,
            "database_mb_per_1m_runs": round(database_bytes / runs * 1e6 / 2**20, 1),
            "library_s": round(median(library), 3),
            "cli_s": {name: wall for name, (wall, _) in cli.items()},
            "cli_cpu_s": {name: cpu for name, (_, cpu) in cli.items()},
            "metrics_scrape": metrics_scrapes(home, config),
            "metrics_cli_s": round(median(cli_wall_times(["metrics"], home, cli_samples)) / 1000,
                                   3)}


def cli_seconds(args: list[str], home: Path, samples: int) -> tuple[float, float]:
    """A whole `easyflow ARGS` process's median wall and CPU (user + system) seconds: the CPU
    time is what the box's other load disturbs least."""
    times = cli_process_times(args, home, samples)
    return (round(median([wall for wall, _ in times]) / 1000, 3),
            round(median([cpu for _, cpu in times]) / 1000, 3))


def metrics_scrapes(home: Path, config: Config, repeats: int = 3) -> dict[str, float]:
    """Scrapes of every metric as the daemon's collector reads them (median seconds): the
    first, which reads the whole history (as `easyflow metrics` does), and the next, after
    `NEW_RUNS` more runs ended (it reads only what ended since its last scrape)."""
    from easyflow_cli.core.paths import database_path
    from easyflow_cli.reporting.metrics import EasyflowCollector
    from easyflow_cli.reporting.run_totals import SettledTotals

    first, following = [], []
    for _ in range(repeats):
        collector = EasyflowCollector(functools.partial(Store, database_path(home)),
                                      lambda: config, lambda _store: None, SettledTotals().read)
        first.append(_scrape_time(collector))
        with Store.open(home) as store:
            insert_runs(store, SYNTHETIC_COLUMNS, synthetic_runs(
                NEW_RUNS, datetime.now(UTC), timedelta(minutes=NEW_RUNS)))
        following.append(_scrape_time(collector))
    return {"first_s": round(median(first), 3), "next_s": round(median(following), 4),
            "new_runs": NEW_RUNS}


def _scrape_time(collector: Collector) -> float:
    start = time.perf_counter()
    list(collector.collect())
    return time.perf_counter() - start
