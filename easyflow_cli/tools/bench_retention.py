"""Retention at scale: a year of runs at a constant rate, day by day on a fake clock, each with
its log file, pruned as the daemon prunes (its `Pruning`, batch by batch) or kept forever;
then how big the database and the log directory are, and how long the longest batch took.

    python -m easyflow_cli.tools.bench_retention DIR [--runs 1000000] [--keep 7d|forever]
        [--days 365] [--no-logs]
    python -m easyflow_cli.tools.bench_retention DIR --reports-only   (time the reports there)
"""

from __future__ import annotations

import argparse
import json
import os
import time
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from easyflow_cli.core.config import load_config
from easyflow_cli.core.durations import parse_duration
from easyflow_cli.core.paths import logs_dir, run_log_path
from easyflow_cli.core.stats import nearest_rank
from easyflow_cli.runtime.daemon.pruning import Pruning
from easyflow_cli.storage.sqlite_queue import insert_runs
from easyflow_cli.storage.store import Store
from easyflow_cli.tools.bench_reports import SYNTHETIC_COLUMNS, synthetic_runs

YEAR_START = datetime(2026, 1, 1, tzinfo=UTC)
LOG_TEXT = b"== step-1: ./job.sh\n" + b"processed 1200 records in 0.8 s\n" * 8


def runs_of_day(day: datetime, count: int, offset: int) -> Iterator[tuple]:
    """`count` synthetic runs finishing at a constant rate through the day (the bench's
    reports history, its times moved there)."""
    step = 86400 / count
    for index, row in enumerate(synthetic_runs(count, day)):
        mixed = list(row)
        finished = day + timedelta(seconds=(index + 1) * step)
        started = finished - timedelta(seconds=row[11])
        enqueued = started - timedelta(seconds=row[15])
        mixed[0] = f"wf-{(offset + index) % 50}"
        mixed[7], mixed[8], mixed[9], mixed[10] = (
            _iso(enqueued), _iso(started), _iso(started), _iso(finished))
        yield tuple(mixed)


def _iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def simulate(home: Path, runs: int, keep: str, days: int = 365,
             logs: bool = True) -> dict[str, Any]:
    config = replace(load_config(), keep_history_s=None if keep == "forever"
                     else parse_duration(keep))
    per_day = runs // days
    batch_s: list[float] = []
    batch_cpu_s: list[float] = []
    began = time.perf_counter()
    with Store.open(home) as store:
        pruning = Pruning(store, config, home, YEAR_START)
        for day in range(days):
            start = YEAR_START + timedelta(days=day)
            ids = insert_runs(store, SYNTHETIC_COLUMNS, runs_of_day(start, per_day, day))
            for run_id in ids if logs else ():
                run_log_path(home, run_id).write_bytes(LOG_TEXT)
            now = start + timedelta(days=1)
            pruning.look_now(now)
            while pruning.due(now):
                if pruning.removing is not None:
                    pruning.removing.result()  # as the loop waits for them, between events
                pruning.longest_s = 0.0
                cpu = time.thread_time()
                pruning.step(now)
                if pruning.longest_s:  # a batch ran (not the look that found none)
                    batch_s.append(pruning.longest_s)
                    batch_cpu_s.append(time.thread_time() - cpu)
            store.checkpoint()  # as the daemon does in its quiet moments
        pruning.close()
        rollups = store.conn.execute("SELECT count(*) FROM run_rollups").fetchone()[0]
        detail = store.conn.execute("SELECT count(*) FROM runs").fetchone()[0]
        free_pages = store.conn.execute("PRAGMA freelist_count").fetchone()[0]
    return {"runs": per_day * days, "days": days, "keep": keep, "runs_in_detail": detail,
            "rollup_rows": rollups, "database_bytes": _database_bytes(home),
            "free_pages": free_pages, **_logs_size(home), **_batches(batch_s, "batch"),
            **_batches(batch_cpu_s, "batch_cpu"),
            "seconds": round(time.perf_counter() - began, 1)}


def time_reports(home: Path) -> dict[str, float]:
    """Seconds each report's library call takes over the whole history in `home`."""
    from easyflow_cli.reporting import accounting
    from easyflow_cli.reporting.accounting import Period
    from easyflow_cli.reporting.reports import QUANTILES
    from easyflow_cli.reporting.timeline import Timeline

    whole = Period(None, None)
    with Store.open(home) as store:
        start = accounting.earliest_start(store, whole) or 0.0
        calls = {
            "costs": lambda: accounting.cost_sums(store, whole, "mode"),
            "costs_by_day": lambda: accounting.cost_sums(store, whole, "day"),
            "latency": lambda: accounting.latency_stats(store, whole, QUANTILES),
            "pools": lambda: accounting.pool_use(store, whole, Timeline(start, time.time(), 24)),
        }
        times = {}
        for name, call in calls.items():
            began = time.perf_counter()
            call()
            times[name] = round(time.perf_counter() - began, 3)
    return times


def _batches(seconds: list[float], name: str) -> dict[str, Any]:
    """How long the prune batches held the loop (wall time, or the CPU time of its thread, which
    a busy box does not stretch): their count, median, p99 and longest (ms)."""
    if not seconds:
        return {"prune_batches": 0}
    ordered = sorted(seconds)
    return {"prune_batches": len(ordered),
            **{f"{name}_{label}_ms": round(ordered[nearest_rank(len(ordered), q) - 1] * 1000, 1)
               for label, q in (("p50", 50), ("p99", 99), ("max", 100))}}


def _database_bytes(home: Path) -> int:
    return sum(p.stat().st_size for p in home.glob("easyflow.db*"))


def _logs_size(home: Path) -> dict[str, int]:
    files = apparent = blocks = 0
    with os.scandir(logs_dir(home)) as entries:
        for entry in entries:
            info = entry.stat()
            files, apparent, blocks = files + 1, apparent + info.st_size, blocks + info.st_blocks
    return {"log_files": files, "log_bytes": apparent, "log_disk_bytes": blocks * 512}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("home", type=Path)
    parser.add_argument("--runs", type=int, default=1_000_000)
    parser.add_argument("--keep", default="7d")
    parser.add_argument("--days", type=int, default=365)
    parser.add_argument("--no-logs", action="store_true", help="the database alone (quicker)")
    parser.add_argument("--reports-only", action="store_true",
                        help="no simulation: time the reports over the history in DIR")
    args = parser.parse_args()
    if args.reports_only:
        print(json.dumps(time_reports(args.home)))
    else:
        print(json.dumps(simulate(args.home, args.runs, args.keep, args.days, not args.no_logs)))


if __name__ == "__main__":
    main()
