"""The Python-callable steps `easyflow bench` runs (kept apart so workers import little).

Each prints one line the benchmark reads back from the run's log.
"""

from __future__ import annotations

import time

STAMP_MARK = "easyflow-bench-stamp"
BURN_MARK = "easyflow-bench-burn"


def stamp() -> None:
    """First thing it does: read the monotonic clock (system-wide on Linux)."""
    now = time.monotonic()
    print(f"{STAMP_MARK} {now!r}")


def noop() -> None:
    """Does nothing: what is left of a run is easyflow's own cost."""


def burn(iterations: str) -> None:
    """CPU-bound work of a fixed size; prints how long it took."""
    start = time.perf_counter()
    total = 0
    for i in range(int(iterations)):
        total += i
    print(f"{BURN_MARK} {time.perf_counter() - start!r}")


def spin(seconds: str) -> None:
    """Keep one core busy for a while (eco load for the isolation and backlog figures)."""
    until = time.perf_counter() + float(seconds)
    while time.perf_counter() < until:
        pass
