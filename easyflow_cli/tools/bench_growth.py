"""How the daemon's costs grow with the work waiting: real-time dispatch latency and the
daemon's CPU time per dispatch, with 0, 10,000, … eco runs waiting for their off-peak window,
and with 0, 1,000, … schedules. Flat curves mean a wake-up costs the same however much waits.

One daemon (bench_daemon.py) measures both curves, the schedules first; the sizes are measured
smallest first, the schedules or the backlog grown between them by bulk inserts through the
store and the queue, never through the CLI. The eco runs wait a day (`not_before`), the
schedules fire a day from now: nothing of them becomes due while the bench measures.

    python -m easyflow_cli.tools.bench_growth [--backlog 0,10000,100000,1000000]
        [--schedules 0,1000,10000] [--samples 300]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

from easyflow_cli.core.errors import BadInput
from easyflow_cli.core.model import Mode, Trigger
from easyflow_cli.core.spec import ScheduleSpec
from easyflow_cli.core.timeutil import to_iso, utcnow
from easyflow_cli.scheduling.scheduler import fire_after
from easyflow_cli.tools.bench_daemon import BenchDaemon, BenchError, running_daemon
from easyflow_cli.tools.bench_figures import distribution
from easyflow_cli.tools.bench_steps import STAMP_MARK

FULL_BACKLOG: tuple[int, ...] = (0, 10_000, 100_000, 1_000_000)
FULL_SCHEDULES: tuple[int, ...] = (0, 1_000, 10_000)
QUICK_BACKLOG: tuple[int, ...] = (0, 10_000)
QUICK_SCHEDULES: tuple[int, ...] = (0, 1_000)
SEED_CHUNK = 100_000  # runs per insert transaction: the daemon's own writes wait meanwhile
WAITING_FOR = timedelta(days=1)  # beyond the bench: nothing seeded becomes due while it runs
SIZE_SUFFIXES = {"k": 1_000, "m": 1_000_000}
GROWN_WORKFLOW = "bench-true"  # the one the schedules are added to

Progress = Callable[[str], None]


def parse_sizes(text: str, option: str) -> list[int]:
    """`0,10000,100k,1M` as sizes, smallest first, each once; bad input names the option."""
    sizes = set()
    for item in text.split(","):
        word = item.strip().lower().replace("_", "")
        factor = SIZE_SUFFIXES.get(word[-1:], 1)
        digits = word[:-1] if factor > 1 else word
        if not digits.isdigit():
            raise BadInput(f"{option}: {item.strip()!r} is not a size (give counts such as "
                           "0,10000,100k,1M)")
        sizes.add(int(digits) * factor)
    return sorted(sizes)


@dataclass(frozen=True)
class GrowthSizes:
    """The sizes each curve is measured at, smallest first."""

    backlog: tuple[int, ...]
    schedules: tuple[int, ...]

    @classmethod
    def parse(cls, backlog: str | None, schedules: str | None, *, quick: bool) -> GrowthSizes:
        """From `--backlog` and `--schedules` (None: the defaults of a full or quick bench)."""
        if backlog is None:
            backlog_sizes = QUICK_BACKLOG if quick else FULL_BACKLOG
        else:
            backlog_sizes = tuple(parse_sizes(backlog, "--backlog"))
        if schedules is None:
            schedule_sizes = QUICK_SCHEDULES if quick else FULL_SCHEDULES
        else:
            schedule_sizes = tuple(parse_sizes(schedules, "--schedules"))
        return cls(backlog_sizes, schedule_sizes)


def growth_curves(root: Path, sizes: GrowthSizes, samples: int,
                  progress: Progress = lambda message: None) -> dict[str, Any]:
    """Both curves: one point per size, each with dispatch latency and daemon CPU; and for
    each, its largest size's p50 and CPU over its smallest's. One daemon measures both: the
    schedules first, removed (in one transaction) before the runs are queued."""
    curves: dict[str, Any] = {"samples": samples, "schedules": [], "backlog": []}
    grown = {"schedules": (sizes.schedules, "schedules", schedule_count, seed_schedules),
             "backlog": (sizes.backlog, "eco runs waiting", waiting_runs, seed_waiting_runs)}
    with running_daemon(root) as daemon:
        warm_up(daemon)
        for curve, (steps, noun, count, seed) in grown.items():
            points = curves[curve]
            for size in steps:
                progress(f"dispatch with {size:,} {noun}")
                seed(daemon, size - count(daemon))
                points.append({"size": size, **growth_point(daemon, samples)})
            if curve == "schedules":
                seed_schedules(daemon, -schedule_count(daemon))
            if points:
                curves[f"{curve}_p50_growth"] = _growth(points, lambda p: p["dispatch_ms"]["p50"])
                curves[f"{curve}_cpu_growth"] = _growth(
                    points, lambda p: p["daemon_cpu_ms_per_dispatch"])
    return curves


def _growth(points: list[dict[str, Any]], figure: Callable[[dict[str, Any]], float]) -> float:
    """The largest size's figure over the smallest's (1.0: flat)."""
    smallest = figure(points[0])
    return round(figure(points[-1]) / smallest, 3) if smallest else 1.0


def warm_up(daemon: BenchDaemon) -> None:
    """Every real-time worker imports the stamp step before anything is timed."""
    ids, _, _ = daemon.submit("bench-stamp", count=10)
    if not daemon.wait_finished(ids, timeout=60):
        raise BenchError("warm-up runs did not finish within a minute")


def growth_point(daemon: BenchDaemon, samples: int) -> dict[str, Any]:
    """Dispatch latency of `samples` real-time runs one at a time, and the daemon's CPU time
    over them divided by their number."""
    pid = daemon.status()["pid"]
    before = daemon_cpu_s(pid)
    latencies = [stamped_dispatch_ms(daemon) for _ in range(samples)]
    cpu = daemon_cpu_s(pid) - before
    return {"dispatch_ms": distribution(latencies),
            "daemon_cpu_ms_per_dispatch": round(1000 * cpu / samples, 3)}


def stamped_dispatch_ms(daemon: BenchDaemon) -> float:
    """Milliseconds from the submitting transaction to the stamp step's first instruction."""
    ids, submitted_mono, _ = daemon.submit("bench-stamp")
    if not daemon.wait_finished(ids, timeout=30):
        raise BenchError(f"run {ids[0]} did not finish within 30 s")
    return (daemon.marked_value(ids[0], STAMP_MARK) - submitted_mono) * 1000


def daemon_cpu_s(pid: int) -> float:
    """CPU time of every thread of the process so far, in seconds: the first field of each
    thread's /proc schedstat (nanoseconds), finer than the clock ticks of /proc/PID/stat."""
    total = 0
    for stat in Path(f"/proc/{pid}/task").glob("*/schedstat"):
        try:
            total += int(stat.read_text().split()[0])
        except (OSError, IndexError, ValueError):
            continue  # a thread that ended meanwhile
    return total / 1e9


def waiting_runs(daemon: BenchDaemon) -> int:
    return daemon.store.queue.depths()[Mode.ECO]


def seed_waiting_runs(daemon: BenchDaemon, count: int) -> None:
    """`count` eco runs queued (bulk, no wake-up), each waiting a day for its window."""
    planned = daemon.plan("bench-eco-spin", Trigger.SCHEDULE)
    planned.not_before = planned.enqueued_at + WAITING_FOR
    for start in range(0, max(count, 0), SEED_CHUNK):
        daemon.store.queue.enqueue([planned] * min(SEED_CHUNK, count - start))


def schedule_count(daemon: BenchDaemon) -> int:
    return len(daemon.store.schedule_rows(GROWN_WORKFLOW))


def seed_schedules(daemon: BenchDaemon, count: int) -> None:
    """`count` daily schedules in one transaction, their first fires spread over the hours
    after a day from now; a negative count removes as many."""
    store, now = daemon.store, utcnow()
    schedule = ScheduleSpec("every", "1d")
    with store.write():
        for row in store.schedule_rows(GROWN_WORKFLOW)[:max(-count, 0)]:
            store.delete_schedule(row["id"])
        for offset in range(max(count, 0)):
            created = to_iso(now - timedelta(seconds=offset % 3600))
            schedule_id = store.insert_schedule(GROWN_WORKFLOW, schedule, origin="cli",
                                                now_iso=created)
            row = store.get_schedule(schedule_id)
            nxt = fire_after(row, now + timedelta(hours=1), now)
            store.record_schedule_fire(schedule_id, fired_at=None, next_fire_at=to_iso(nxt))


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m easyflow_cli.tools.bench_growth")
    parser.add_argument("--backlog", default=",".join(map(str, FULL_BACKLOG)))
    parser.add_argument("--schedules", default=",".join(map(str, FULL_SCHEDULES)))
    parser.add_argument("--samples", type=int, default=300)
    args = parser.parse_args(argv)
    try:
        sizes = GrowthSizes.parse(args.backlog, args.schedules, quick=False)
    except BadInput as exc:
        parser.error(str(exc))
    with tempfile.TemporaryDirectory(prefix="easyflow-growth-") as root:
        started = time.monotonic()
        curves = growth_curves(Path(root), sizes, args.samples,
                               lambda message: print(f"bench: {message}…", flush=True,
                                                     file=sys.stderr))
        curves["elapsed_s"] = round(time.monotonic() - started, 1)
    print(json.dumps(curves, indent=2))


if __name__ == "__main__":
    main()
