"""What the metrics count over all history: ended runs by workflow, mode and state, the
histograms of their durations and queue waits by mode, and the sums `report costs` prices.

Every figure comes from the database, so it survives daemon restarts, and each is a plain sum:
a counter only grows while runs end. Pruned history must keep counting, or `rate()` would see a
reset: `run_totals` is the one place where the rollups of pruned runs are added to what the
`runs` table still holds (`pruned_totals`).

Read whole (`run_totals`), the figures are counted off indexes that hold them, so no table row
is read, but every run is stepped over once per index read. The daemon, scraped again and again,
keeps the totals of the runs below the oldest one still queued or running (`SettledTotals`):
those never change, so a scrape reads only the runs since.
"""

from __future__ import annotations

import bisect
import itertools
import math
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from easyflow_cli.core.model import Mode
from easyflow_cli.core.sketch import value_of
from easyflow_cli.reporting import summarized
from easyflow_cli.reporting.local_days import ALL_FIELDS, CHARGE_SUMS, FIELDS, sums_sql
from easyflow_cli.reporting.rolled_up import COST_SUMS
from easyflow_cli.storage.dialect import ReportStore
from easyflow_cli.storage.rollups import decode
from easyflow_cli.storage.sqlite_queue import QUEUE_PARTS
from easyflow_cli.storage.store import CHARGED_SQL
from easyflow_cli.storage.summaries import (
    DURATION_BUCKETS,
    ENDED_STATES,
    HISTOGRAMS,
    WAIT_BUCKETS,
    histogram_columns,
)

# What a run's contribution is read from, when runs are read one by one.
RUN_COLUMNS = ("workflow", "mode", "state", "finished_at", "off_peak", "duration_s",
               "queue_wait_s", "cpu_user_s", "cpu_system_s", "energy_j", "tariff_cost",
               "tariff_baseline_cost", "carbon_g", "baseline_carbon_g")

UsageKey = tuple[str, Any]  # mode, off_peak (as stored: 0, 1 or NULL)


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

    def observe(self, value: float, times: int = 1) -> None:
        for index in range(bisect.bisect_left(self.bounds, value), len(self.bounds)):
            self.cumulative[index] += times
        self.count += times
        self.total += value * times


@dataclass
class RunTotals:
    """Ended runs by (workflow, mode, state); duration and queue-wait histograms by mode; and
    per (mode, off_peak) the sums of `local_days.SUMS` that `report costs` prices."""

    runs: dict[tuple[str, str, str], int] = field(default_factory=dict)
    durations: dict[str, Histogram] = field(default_factory=dict)
    waits: dict[str, Histogram] = field(default_factory=dict)
    usage: dict[UsageKey, dict[str, float]] = field(default_factory=dict)

    def add(self, other: RunTotals) -> RunTotals:
        for key, count in other.runs.items():
            self.runs[key] = self.runs.get(key, 0) + count
        for mine, theirs, bounds in ((self.durations, other.durations, DURATION_BUCKETS),
                                     (self.waits, other.waits, WAIT_BUCKETS)):
            for mode, histogram in theirs.items():
                mine.setdefault(mode, Histogram.empty(bounds)).add(histogram)
        for usage_key, sums in other.usage.items():
            into = self.usage.setdefault(usage_key, dict.fromkeys(ALL_FIELDS, 0))
            for name in ALL_FIELDS:
                into[name] += sums[name]
        return self

    def cost_rows(self) -> list[dict[str, Any]]:
        """The usage as the rows `accounting.cost_sums` gives by mode (`cost_report` prices)."""
        return [{"grp": mode, "mode": mode, "off_peak": off_peak, **sums}
                for (mode, off_peak), sums in self.usage.items()]


def run_totals(store: ReportStore) -> RunTotals:
    """Everything ever counted: the runs still in the table, plus what pruning rolled up."""
    with read_snapshot(store):
        return table_totals(store).add(pruned_totals(store))


def pruned_totals(store: ReportStore) -> RunTotals:
    """The totals of runs that history retention removed from the `runs` table, read from
    their rollups (storage/rollups.py): counts by state and the priced sums exactly; the
    histograms from the rollups' sketches, each bucket counted at its value (a pruned run can
    move to a neighbouring bucket: within the sketch's relative error of a bound)."""
    totals = RunTotals()
    states = ", ".join(f"total({state.value}) AS {state.value}" for state in ENDED_STATES)
    for row in store.read(
        f"SELECT workflow, mode, off_peak, {states} FROM run_rollups"
        " GROUP BY workflow, mode, off_peak",
    ):
        for state in ENDED_STATES:
            _count(totals, (row["workflow"], row["mode"], state.value), int(row[state.value]))
    for row in store.read(
        f"SELECT mode, off_peak, {COST_SUMS} FROM run_rollups WHERE settled > 0"
        " GROUP BY mode, off_peak",
    ):
        sums = totals.usage.setdefault((row["mode"], row["off_peak"]),
                                       dict.fromkeys(ALL_FIELDS, 0))
        for name in ALL_FIELDS:
            sums[name] += row[name]
    _add_sketches(totals, store)
    return totals


def _add_sketches(totals: RunTotals, store: ReportStore) -> None:
    for mode, worker_s, wait_sketch, duration_sketch in store.read(
        "SELECT mode, worker_s, wait_sketch, duration_sketch FROM run_rollups WHERE settled > 0",
    ):
        durations = totals.durations.setdefault(mode, Histogram.empty(DURATION_BUCKETS))
        durations.add(_from_sketch(decode(duration_sketch), DURATION_BUCKETS, worker_s))
        waits = totals.waits.setdefault(mode, Histogram.empty(WAIT_BUCKETS))
        waits.add(_from_sketch(decode(wait_sketch), WAIT_BUCKETS, None))


def _from_sketch(sketch: dict[int, Any], bounds: tuple[float, ...],
                 total: float | None) -> Histogram:
    """A histogram of the sketch's counts at their buckets' values; its sum is `total` when
    it is known exactly (durations: the worker seconds), else the sketch's estimate."""
    histogram = Histogram.empty(bounds)
    estimate = 0.0
    for bucket, count in sketch.items():
        value = value_of(bucket)
        histogram.observe(value, count)
        estimate += value * count
    histogram.total = estimate if total is None else total
    return histogram


def pruned_count(store: ReportStore) -> int:
    """How many runs were pruned so far: when it changes, runs below the settled mark may have
    left the table for the rollups, and `SettledTotals` counts them again."""
    return int(store.read("SELECT total(runs) FROM run_rollups").fetchone()[0])


@contextmanager
def read_snapshot(store: ReportStore) -> Iterator[None]:
    """One read transaction: every query inside sees the same database."""
    store.read(store.dialect.begin_snapshot)
    try:
        yield
    finally:
        store.read("COMMIT")


# ------------------------------------------------------------------ whole, off the indexes


def table_totals(store: ReportStore, below: int | None = None) -> RunTotals:
    """The totals over the runs the `runs` table holds (those with an id below `below`): of
    the summarized hours off their summaries when all are asked for, of the rest off the
    indexes (or run by run, when the summaries leave only a few hours)."""
    cover = summarized.coverage(store, None, None) if below is None else None
    if cover is None or summarized.whole(cover):
        return _index_totals(store, below)
    totals = summary_totals(store, cover)
    for low, high in cover.detail:
        where, args = summarized.detail_clause(low, high)
        totals.add(totals_of(store.read(
            f"SELECT {', '.join(RUN_COLUMNS)} FROM {summarized.BY_FINISH} WHERE {where}", args)))
    return totals


def summary_totals(store: ReportStore, cover: summarized.Coverage) -> RunTotals:
    """The totals of the summarized hours `cover` holds."""
    where, args = cover.hours_where()
    states = ", ".join(f"sum(state_{state.value})" for state in ENDED_STATES)
    sums = ", ".join(f"total({name})" for name in ALL_FIELDS)
    counts = {name: ", ".join(f"sum({column})" for column in histogram_columns(name))
              for name in HISTOGRAMS}
    totals = RunTotals()
    for row in store.read(
        f"SELECT workflow, mode, off_peak, {states}, {sums}, {counts['duration']},"
        f" {counts['wait']}, total(worker_s), total(wait_s) FROM run_summaries WHERE {where}"
        " GROUP BY workflow, mode, off_peak", args,
    ):
        _add_summary_row(totals, list(row))
    return totals


def _add_summary_row(totals: RunTotals, row: list[Any]) -> None:
    workflow, mode, off_peak = row[:3]
    values = iter(row[3:])
    for state in ENDED_STATES:
        _count(totals, (workflow, mode, state.value), next(values))
    sums = totals.usage.setdefault((mode, off_peak), dict.fromkeys(ALL_FIELDS, 0))
    for name in ALL_FIELDS:
        sums[name] += next(values)
    if not sums["runs"]:
        del totals.usage[(mode, off_peak)]
    histograms = [(totals.durations, DURATION_BUCKETS), (totals.waits, WAIT_BUCKETS)]
    counts = [[next(values) for _ in range(len(bounds) + 1)] for _, bounds in histograms]
    for (by_mode, bounds), found, total in zip(histograms, counts, values, strict=True):
        if sum(found):
            cumulative = list(itertools.accumulate(found))
            by_mode.setdefault(mode, Histogram.empty(bounds)).add(
                Histogram(bounds, cumulative[:-1], cumulative[-1], total))


def _index_totals(store: ReportStore, below: int | None) -> RunTotals:
    ids = "" if below is None else f" AND id < {int(below)}"
    totals = RunTotals(durations=histograms(store, "duration_s", "runs_durations",
                                            DURATION_BUCKETS, ids),
                       waits=histograms(store, "queue_wait_s", "runs_waits", WAIT_BUCKETS, ids))
    _add_settled_sums(totals, store, ids)
    for workflow, mode, state, count in store.read(
        "SELECT workflow, mode, state, count(*) FROM runs"
        f" {store.dialect.indexed_by('runs_ended_unsettled')}"
        f" WHERE duration_s IS NULL AND finished_at IS NOT NULL{ids}"
        " GROUP BY workflow, mode, state",
    ):
        _count(totals, (workflow, mode, state), count)
    return totals


def _add_settled_sums(totals: RunTotals, store: ReportStore, ids: str) -> None:
    """Runs that ended with a duration, by state, and what `report costs` sums of them: one
    pass over the index that holds both, in its order (workflow, mode, tariff)."""
    states = ", ".join(f"count(CASE WHEN state = '{state.value}' THEN 1 END)"
                       for state in ENDED_STATES)
    for row in store.read(
        f"SELECT workflow, mode, off_peak, {states}, {sums_sql()}"
        f" FROM runs {store.dialect.indexed_by('runs_costs_workflow')}"
        f" WHERE duration_s IS NOT NULL{ids} GROUP BY workflow, mode, off_peak",
    ):
        workflow, mode, off_peak = row[0], row[1], row[2]
        for state, count in zip(ENDED_STATES, row[3:3 + len(ENDED_STATES)], strict=True):
            _count(totals, (workflow, mode, state.value), count)
        sums = totals.usage.setdefault((mode, off_peak), dict.fromkeys(ALL_FIELDS, 0))
        for name in FIELDS:
            sums[name] += row[name]
    _add_charge_sums(totals, store, ids)


def _add_charge_sums(totals: RunTotals, store: ReportStore, ids: str) -> None:
    """What runs were charged under a tariff or carbon forecast, as `report costs` adds it."""
    for row in store.read(
        f"SELECT mode, off_peak, {sums_sql(CHARGE_SUMS)} FROM runs"
        f" {store.dialect.indexed_by('runs_charges')} WHERE {CHARGED_SQL}{ids}"
        " GROUP BY mode, off_peak",
    ):
        sums = totals.usage.setdefault((row["mode"], row["off_peak"]),
                                       dict.fromkeys(ALL_FIELDS, 0))
        for name in CHARGE_SUMS:
            sums[name] += row[name]


def _count(totals: RunTotals, key: tuple[str, str, str], count: int) -> None:
    if count:
        totals.runs[key] = totals.runs.get(key, 0) + count


def histograms(store: ReportStore, column: str, index: str, bounds: tuple[float, ...],
               ids: str = "") -> dict[str, Histogram]:
    """Per mode, the histogram of a column of the runs that occupied a worker: each bucket
    counted over its own range of the index, which steps the entries without evaluating a
    comparison per bucket for each (about three times quicker)."""
    edges = [-math.inf, *bounds, math.inf]
    sql = (f"SELECT count(*), total({column}) FROM runs {store.dialect.indexed_by(index)}"
           " WHERE mode = ?"
           f" AND duration_s IS NOT NULL AND {column} > ? AND {column} <= ?{ids}")
    found = {}
    for mode in Mode:
        counts, total = [], 0.0
        for low, high in itertools.pairwise(edges):
            count, part = store.read(sql, (mode.value, low, high)).fetchone()
            counts.append(count)
            total += part
        if sum(counts):
            cumulative = list(itertools.accumulate(counts))
            found[mode.value] = Histogram(bounds, cumulative[:-1], cumulative[-1], total)
    return found


# ------------------------------------------------------------------ run by run, from an id on


def totals_of(rows: Iterable[Any]) -> RunTotals:
    """The totals of runs read one by one (`RUN_COLUMNS`), as the queries above count them."""
    totals = RunTotals()
    for row in rows:
        if row["finished_at"] is not None:
            key = (row["workflow"], row["mode"], row["state"])
            totals.runs[key] = totals.runs.get(key, 0) + 1
        if row["duration_s"] is not None:
            _add_settled(totals, row)
    return totals


def _add_settled(totals: RunTotals, row: Any) -> None:
    mode = row["mode"]
    totals.durations.setdefault(mode, Histogram.empty(DURATION_BUCKETS)).observe(
        row["duration_s"])
    if row["queue_wait_s"] is not None:
        totals.waits.setdefault(mode, Histogram.empty(WAIT_BUCKETS)).observe(row["queue_wait_s"])
    sums = totals.usage.setdefault((mode, row["off_peak"]), dict.fromkeys(ALL_FIELDS, 0))
    cpu = (None if row["cpu_user_s"] is None or row["cpu_system_s"] is None
           else row["cpu_user_s"] + row["cpu_system_s"])
    _add_charges(sums, row, cpu)
    sums["runs"] += 1
    sums["worker_s"] += row["duration_s"]
    sums["cpu_s"] += cpu or 0.0
    if row["energy_j"] is not None:
        sums["energy_j"] += row["energy_j"]
        sums["measured"] += 1
    else:
        sums["unmeasured_cpu_s"] += cpu or 0.0


def _add_charges(sums: dict[str, float], row: Any, cpu: float | None) -> None:
    if row["tariff_cost"] is not None:
        sums["tariff_worker_s"] += row["duration_s"]
        sums["tariff_cpu_s"] += cpu or 0.0
        sums["tariff_cost"] += row["tariff_cost"]
        sums["tariff_baseline_cost"] += row["tariff_baseline_cost"] or 0.0
    if row["carbon_g"] is not None:
        sums["carbon_g"] += row["carbon_g"]
        sums["baseline_carbon_g"] += row["baseline_carbon_g"] or 0.0


def totals_from(store: ReportStore, first_id: int) -> RunTotals:
    """The totals of the runs from `first_id` on, read row by row (a range of the table)."""
    return totals_of(store.read(
        f"SELECT {', '.join(RUN_COLUMNS)} FROM runs WHERE id >= ?", (first_id,)))


def settled_mark(store: ReportStore) -> int:
    """The id below which every run has ended: the oldest queued or running run's, else the
    next id. Ids only grow, so no run below it can appear or change, but by pruning."""
    # Through the partial indexes of queued and running runs: left to itself, SQLite walks the
    # table in id order looking for the first, which reads every run when there is none.
    parts = (*QUEUE_PARTS, ("runs_running", "state = 'running'"))
    marks = [store.read(f"SELECT min(id) FROM runs {store.dialect.indexed_by(index)}"
                        f" WHERE {part}").fetchone()[0] for index, part in parts]
    last = store.read("SELECT max(id) FROM runs").fetchone()[0]
    return min([mark for mark in marks if mark is not None] + [(last or 0) + 1])


class SettledTotals:
    """The daemon's totals between scrapes: those of the runs below the settled mark, kept,
    and moved on as the mark moves; a scrape then reads only the runs from the mark on. Kept
    totals are read again when runs have been pruned since."""

    def __init__(self) -> None:
        self.kept = RunTotals()
        self.mark = 1  # the kept totals are those of the runs below it
        self.pruned = -1  # `pruned_count` when they were read; -1: not read yet

    def read(self, store: ReportStore) -> RunTotals:
        with read_snapshot(store):
            mark, pruned = settled_mark(store), pruned_count(store)
            if pruned != self.pruned:
                self.kept = table_totals(store, mark).add(pruned_totals(store))
                self.mark, self.pruned = mark, pruned
            elif mark > self.mark:
                self.kept.add(totals_of(store.read(
                    f"SELECT {', '.join(RUN_COLUMNS)} FROM runs WHERE id >= ? AND id < ?",
                    (self.mark, mark))))
                self.mark = mark
            recent = totals_from(store, self.mark)
            return RunTotals().add(self.kept).add(recent)
