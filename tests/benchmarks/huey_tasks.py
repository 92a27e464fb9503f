"""The Huey side of `bench_huey.py`: a SqliteHuey and two no-op tasks (not a test module)."""

import os
import time

from huey import SqliteHuey

huey = SqliteHuey("easyflow-bench", filename=os.environ.get("HUEY_BENCH_DB", "huey-bench.db"))


@huey.task()
def stamp() -> float:
    """First thing it does: read the monotonic clock, as easyflow's bench step does."""
    return time.monotonic()


@huey.task()
def noop_stamped() -> float:
    """A no-op that says when it ran, so the drain rate can be read from the results."""
    return time.monotonic()
