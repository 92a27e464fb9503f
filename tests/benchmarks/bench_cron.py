"""The worst cron expressions we know, timed the way `easyflow schedule next --count 50` uses
them: `python tests/benchmarks/bench_cron.py [SAMPLES]` prints JSON, each figure the slowest of
SAMPLES (default 5) computations of the next 50 fire times, in milliseconds, and the worst of all.

The expressions are those that made other cron libraries search far ahead (an impossible day
that only the day-of-week OR makes possible, leap days, both day fields restricted with steps)
or that step through many candidates (every minute across a DST change)."""

from __future__ import annotations

import json
import sys
import time
from datetime import UTC, datetime

from easyflow_cli.core.triggers import next_fire_times

NASTY = [
    ("0 0 31 2 1", "UTC"),  # the 31st of February, or any Monday of February
    ("0 0 30 2 mon-fri", "Europe/Berlin"),
    ("0 0 29 2 *", "UTC"),  # leap days only
    ("59 23 29 2 */7", "America/St_Johns"),  # 29 February that is a Sunday
    ("0 0 31 */2 *", "UTC"),  # the 31st of odd months that have one
    ("*/7 * 31 * fri", "Australia/Lord_Howe"),
    ("* * * * *", "Australia/Lord_Howe"),  # every minute, through the half-hour DST shifts
    ("*/5 1-3 * 3,4,10 sun", "Australia/Adelaide"),
    ("30 2 * * *", "Europe/Berlin"),
    ("0 12 1-7 feb-nov/3 mon", "Asia/Kathmandu"),
    ("59 23 31 12 *", "UTC"),
    ("0 0 1 jan/2 7", "America/St_Johns"),
]
START = datetime(2026, 3, 1, tzinfo=UTC)


def slowest_ms(expr: str, zone: str, samples: int) -> float:
    times = []
    for _ in range(samples):
        began = time.perf_counter()
        next_fire_times("cron", expr, zone, START, START, 50)
        times.append((time.perf_counter() - began) * 1000)
    return round(max(times), 2)


def main() -> None:
    samples = int(sys.argv[1]) if len(sys.argv) > 1 else 5
    figures = {f"{expr} ({zone})": slowest_ms(expr, zone, samples) for expr, zone in NASTY}
    print(json.dumps({"next_50_ms": figures, "worst_ms": max(figures.values()),
                      "samples": samples}, indent=2))


if __name__ == "__main__":
    main()
