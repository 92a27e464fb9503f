"""What the metrics count over all history: ended runs by workflow, mode and state, and the
histograms of their durations and queue waits by mode, summed by SQL at the moment of asking.

Every figure comes from the database, so it survives daemon restarts, and each is a plain sum:
a counter only grows while runs end. Pruned history must keep counting, or `rate()` would see a
reset: `run_totals` is the one place where the rollups of pruned runs are added to what the
`runs` table still holds (`pruned_totals`).

Each figure is counted off an index that holds it (migration 3's, and `runs_ended`), so a
scrape reads no table row; it still steps over every run once per figure (the performance
notes give the time over a million runs).
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field

from easyflow_cli.core.model import Mode
from easyflow_cli.storage.store import Store

# Upper bounds in seconds. Durations: a no-op call to a long batch job. Queue waits: the few
# milliseconds of a real-time hand-over to the hours an eco run waits for off-peak.
DURATION_BUCKETS = (0.01, 0.1, 0.5, 1.0, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 1800.0, 3600.0,
                    4 * 3600.0)
WAIT_BUCKETS = (0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 30.0, 60.0, 300.0, 1800.0, 3600.0,
                4 * 3600.0, 12 * 3600.0, 24 * 3600.0)


@dataclass
class Histogram:
    """Cumulative counts at each bound (Prometheus' `le`), the count and the sum of values."""

    bounds: tuple[float, ...]
    cumulative: list[int]
    count: int = 0
    total: float = 0.0

    @classmethod
    def empty(cls, bounds: tuple[float, ...]) -> Histogram:
        return cls(bounds, [0] * len(bounds))

    def add(self, other: Histogram) -> None:
        assert other.bounds == self.bounds, "histograms of different buckets"
        self.cumulative = [a + b for a, b in zip(self.cumulative, other.cumulative, strict=True)]
        self.count += other.count
        self.total += other.total


@dataclass
class RunTotals:
    """Ended runs by (workflow, mode, state); duration and queue-wait histograms by mode."""

    runs: dict[tuple[str, str, str], int] = field(default_factory=dict)
    durations: dict[str, Histogram] = field(default_factory=dict)
    waits: dict[str, Histogram] = field(default_factory=dict)

    def add(self, other: RunTotals) -> RunTotals:
        for key, count in other.runs.items():
            self.runs[key] = self.runs.get(key, 0) + count
        for mine, theirs, bounds in ((self.durations, other.durations, DURATION_BUCKETS),
                                     (self.waits, other.waits, WAIT_BUCKETS)):
            for mode, histogram in theirs.items():
                mine.setdefault(mode, Histogram.empty(bounds)).add(histogram)
        return self


def run_totals(store: Store) -> RunTotals:
    """Everything ever counted: the runs still in the table, plus what pruning rolled up."""
    return live_totals(store).add(pruned_totals(store))


def pruned_totals(store: Store) -> RunTotals:
    """The totals of runs that history retention removed from the `runs` table, read from
    their rollups. Nothing is pruned while no retention exists, so nothing is added."""
    return RunTotals()


def live_totals(store: Store) -> RunTotals:
    """The totals over the runs the `runs` table holds."""
    return RunTotals(runs=ended_runs(store),
                     durations=histograms(store, "duration_s", "runs_durations",
                                          DURATION_BUCKETS),
                     waits=histograms(store, "queue_wait_s", "runs_waits", WAIT_BUCKETS))


def ended_runs(store: Store) -> dict[tuple[str, str, str], int]:
    """How many runs ended in each state, per workflow and mode (a run ends when it is given
    its finish time, in one of the ended states)."""
    return {(workflow, mode, state): count for workflow, mode, state, count in store.conn.execute(
        "SELECT workflow, mode, state, count(*) FROM runs INDEXED BY runs_ended"
        " WHERE finished_at IS NOT NULL GROUP BY workflow, mode, state")}


def histograms(store: Store, column: str, index: str,
               bounds: tuple[float, ...]) -> dict[str, Histogram]:
    """Per mode, the histogram of a column of the runs that occupied a worker: each bucket
    counted over its own range of the index, which steps the entries without evaluating a
    comparison per bucket for each (about three times quicker)."""
    edges = [-math.inf, *bounds, math.inf]
    sql = (f"SELECT count(*), total({column}) FROM runs INDEXED BY {index} WHERE mode = ?"
           f" AND duration_s IS NOT NULL AND {column} > ? AND {column} <= ?")
    found = {}
    for mode in Mode:
        counts, total = [], 0.0
        for low, high in itertools.pairwise(edges):
            count, part = store.conn.execute(sql, (mode.value, low, high)).fetchone()
            counts.append(count)
            total += part
        if sum(counts):
            cumulative = list(itertools.accumulate(counts))
            found[mode.value] = Histogram(bounds, cumulative[:-1], cumulative[-1], total)
    return found
