"""The reports' view of the hourly summaries (`storage/summaries.py`): which part of a period
they cover, and their sums in the shapes `accounting.py` and `run_totals.py` give for the runs
read in detail, to be added.

A period is cut in two: the whole summarized hours inside it (not dirty), read from the
summaries, and the rest (its partial first and last hours, dirty hours, the hours not
summarized yet, and any hour a report must see run by run), read from the detail as ranges of
finish times. Each run is in exactly one of the two, so the sums are those of the detail.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta, tzinfo
from typing import Any

from easyflow_cli.core.timeutil import to_iso
from easyflow_cli.reporting.timeline import Timeline
from easyflow_cli.storage import summaries
from easyflow_cli.storage.dialect import ReportStore
from easyflow_cli.storage.store import Store
from easyflow_cli.storage.summaries import CHARGE_SUMS, COST_SUMS, hour_of, hour_start, next_hour

BY_FINISH = "runs INDEXED BY runs_finished"
Range = tuple[str | None, str | None]  # [low, high) of finish times; None: unbounded


@dataclass(frozen=True)
class Coverage:
    """The summarized hours of a period, as ranges [low, high) of hours, and the ranges of
    finish times left to the detail. No hours: the whole period is read in detail."""

    hours: list[tuple[str, str]]
    detail: list[Range]

    @classmethod
    def none(cls, since: datetime | None, until: datetime | None) -> Coverage:
        return cls([], [(to_iso(since), to_iso(until))])

    def hours_where(self, column: str = "hour") -> tuple[str, list[str]]:
        """SQL selecting the covered hours, and its arguments."""
        clauses = " OR ".join(f"({column} >= ? AND {column} < ?)" for _ in self.hours)
        return f"({clauses})", [bound for pair in self.hours for bound in pair]


def coverage(store: ReportStore, since: datetime | None, until: datetime | None,
             detail_hour: Callable[[str], bool] = lambda hour: False) -> Coverage:
    """What summaries cover of [since, until): whole hours before the mark, not dirty, and not
    among those `detail_hour` wants read in detail."""
    if not isinstance(store, Store):  # summaries are kept in SQLite only
        return Coverage.none(since, until)
    conn = store.conn
    mark = summaries.mark(conn) if summaries.current(conn) else None
    first = conn.execute("SELECT min(hour) FROM run_summaries").fetchone()[0] if mark else None
    if mark is None or first is None:
        return Coverage.none(since, until)
    low = max(first, _hour_from(since)) if since is not None else first
    high = min(mark, hour_of(until)) if until is not None else mark
    skipped = summaries.dirty_hours(conn)
    hours = _covered(low, high, lambda hour: hour in skipped or detail_hour(hour))
    return Coverage(hours, _complement(hours, to_iso(since), to_iso(until)))


def _covered(low: str, high: str, skip: Callable[[str], bool]) -> list[tuple[str, str]]:
    """The hours [low, high) but those skipped, as ranges of consecutive hours."""
    hours: list[tuple[str, str]] = []
    moment, step = hour_start(low), timedelta(hours=1)
    hour = low
    while hour < high:
        moment += step
        after = moment.strftime(summaries.HOUR_FORMAT)
        if not skip(hour):
            if hours and hours[-1][1] == hour:
                hours[-1] = (hours[-1][0], after)
            else:
                hours.append((hour, after))
        hour = after
    return hours


def _hour_from(moment: datetime) -> str:
    """The first hour that begins at or after `moment`."""
    hour = hour_of(moment)
    return hour if hour_start(hour) >= moment else next_hour(hour)


def _complement(hours: list[tuple[str, str]], since: str | None, until: str | None
                ) -> list[Range]:
    """The parts of [since, until) outside the hours. An hour's text bounds finish times as
    its start does: every stored time in it sorts after it, and before the next hour's."""
    ranges: list[Range] = []
    low: str | None = since
    for begin, end in hours:
        if low is None or low < begin:
            ranges.append((low, begin))
        low = end
    if until is None or low is None or low < until:
        ranges.append((low, until))
    return ranges


def detail_clause(low: str | None, high: str | None) -> tuple[str, list[str]]:
    """SQL selecting runs that finished in [low, high)."""
    clauses, args = ["finished_at IS NOT NULL"], []
    if low is not None:
        clauses.append("finished_at >= ?")
        args.append(low)
    if high is not None:
        clauses.append("finished_at < ?")
        args.append(high)
    return " AND ".join(clauses), args


def whole(cover: Coverage) -> bool:
    """Is the whole period read in detail (no summaries)?"""
    return not cover.hours


# ------------------------------------------------------------------ costs


def local_day_straddled(zone: tzinfo) -> Callable[[str], bool]:
    """Whether a local day of `zone` begins inside an hour (not at its start): such an hour's
    runs belong to two days, so they are read in detail."""
    def straddled(hour: str) -> bool:
        start = hour_start(hour)
        return (start.astimezone(zone).date()
                != (start + timedelta(hours=1, microseconds=-1)).astimezone(zone).date())
    return straddled


def cost_sums(store: ReportStore, cover: Coverage, by: str, workflow: str | None,
              zone: tzinfo) -> list[dict[str, Any]]:
    """Per (group, mode, tariff) the sums `accounting.cost_sums` gives, off the summaries of
    the covered hours; by day, each hour goes to the local day it lies in."""
    if whole(cover):
        return []
    where, args = cover.hours_where()
    if workflow:
        where, args = f"{where} AND workflow = ?", [*args, workflow]
    group = {"mode": "mode", "workflow": "workflow", "day": "hour"}[by]
    sums = ", ".join(f"{'sum' if aggregate == 'count' else 'total'}({field}) AS {field}"
                     for field, (aggregate, _, _) in {**COST_SUMS, **CHARGE_SUMS}.items())
    rows = [dict(row) for row in store.read(
        f"SELECT {group} AS grp, mode, off_peak, {sums} FROM run_summaries"
        f" WHERE {where} GROUP BY {group}, mode, off_peak HAVING sum(runs) > 0", args)]
    if by == "day":
        for row in rows:
            row["grp"] = hour_start(row["grp"]).astimezone(zone).date().isoformat()
    return rows


# ------------------------------------------------------------------ latency


def run_counts(store: ReportStore, cover: Coverage, workflow: str | None
               ) -> Counter[tuple[str, str]]:
    """Settled runs per (workflow, mode) over the covered hours."""
    if whole(cover):
        return Counter()
    where, args = cover.hours_where()
    if workflow:
        where, args = f"{where} AND workflow = ?", [*args, workflow]
    return Counter({(name, mode): int(runs) for name, mode, runs in store.read(
        f"SELECT workflow, mode, sum(runs) FROM run_summaries WHERE {where}"
        " GROUP BY workflow, mode HAVING sum(runs) > 0", args)})


def latency_counts(store: ReportStore, cover: Coverage) -> dict[str, tuple[int, int, int, int]]:
    """Per mode, over the covered hours: settled runs, runs with a queue wait, deadlines met
    and missed."""
    where, args = cover.hours_where()
    return {mode: (int(runs), int(waited), int(met), int(missed))
            for mode, runs, waited, met, missed in store.read(
                "SELECT mode, sum(runs), sum(waited), sum(deadlines_met),"
                f" sum(deadlines_missed) FROM run_summaries WHERE {where} GROUP BY mode", args)}


def value_buckets(store: ReportStore, cover: Coverage, mode: str, column: str) -> dict[int, int]:
    """Sketch bucket → runs, of a mode's queue waits or durations over the covered hours."""
    where, args = cover.hours_where()
    return dict(store.read(
        "SELECT bucket, sum(count) FROM run_summary_values"
        f" WHERE mode = ? AND value = ? AND {where} GROUP BY bucket",
        [mode, column, *args]).fetchall())


# ------------------------------------------------------------------ advice

# The evidence of `report advise` (its EVIDENCE_SQL's columns) over the covered hours, with
# eco's missed deadlines as misses; the starts later than their objective are counted apart,
# off the runs that were late (the objectives are the configuration's, not the summaries').
EVIDENCE_SQL = """
SELECT workflow, mode, off_peak, sum(runs) AS runs, min(first_settled_at) AS first,
  max(last_settled_at) AS last, total(waited_for) AS waited,
  total(pinned_by_schedule) AS pinned_by_schedule, total(pinned_by_hand) AS pinned_by_hand,
  total(worker_s) AS worker_s, total(any_cpu_s) AS cpu_s, total(energy_j) AS energy_j,
  sum(measured) AS measured, sum(with_deadline) AS deadlines, min(min_slack_s) AS min_slack_s,
  sum(judged) AS judged,
  sum(CASE WHEN mode = 'eco' THEN deadlines_missed ELSE 0 END) AS missed
FROM run_summaries WHERE {where} GROUP BY workflow, mode, off_peak HAVING sum(runs) > 0
"""


def evidence_rows(store: ReportStore, cover: Coverage, workflow: str | None
                  ) -> list[dict[str, Any]]:
    """Per (workflow, mode, tariff), what `report advise` weighs of the covered hours' runs,
    but their late starts."""
    if whole(cover):
        return []
    where, args = cover.hours_where()
    if workflow:
        where, args = f"{where} AND workflow = ?", [*args, workflow]
    return [dict(row) for row in store.read(EVIDENCE_SQL.format(where=where), args)]


# ------------------------------------------------------------------ pools


def first_start(store: ReportStore, cover: Coverage, workflow: str | None) -> float | None:
    """The earliest start (epoch seconds) of the settled runs of the covered hours."""
    if whole(cover):
        return None
    where, args = cover.hours_where()
    if workflow:
        where, args = f"{where} AND workflow = ?", [*args, workflow]
    return store.read(f"SELECT min(first_settled_began) FROM run_summaries"
                              f" WHERE {where}", args).fetchone()[0]


@dataclass
class PoolSeries:
    """Where `report pools` adds summarized hours: runs per mode, foreground runs, and each
    mode's busy and queued seconds per slice."""

    runs: dict[str, int]
    busy: dict[str, list[float]]
    queued: dict[str, list[float]]
    foreground_runs: int = 0


Edges = list[Range]  # each slice's finish times, as `report pools` picks its runs


def add_pool_use(store: ReportStore, cover: Coverage, workflow: str | None, timeline: Timeline,
                 edges: Edges, into: PoolSeries) -> list[tuple[int, str | None, str | None]]:
    """Add the covered hours whose runs were busy and queued inside one slice, each to its
    slice, as the detail would add them run by run; returns what is left to the detail: for
    each slice, the ranges of finish times it reads."""
    hours = _pool_hours(store, cover, workflow)
    used: list[list[tuple[str, str]]] = [[] for _ in edges]
    for hour, rows in hours.items():
        index = _slice_of(hour, edges, rows, timeline)
        if index is None:
            continue
        used[index].append((hour, next_hour(hour)))
        for mode, foreground, runs, busy, queued in (row[:5] for row in rows):
            if foreground:
                into.foreground_runs += runs
            else:
                into.runs[mode] += runs
            into.busy[mode][index] += busy
            into.queued[mode][index] += queued
    return [(index, low, high)
            for index, (begin, end) in enumerate(edges)
            for low, high in _complement(_merged(used[index]), begin, end)]


def _pool_hours(store: ReportStore, cover: Coverage, workflow: str | None
                ) -> dict[str, list[tuple]]:
    where, args = cover.hours_where()
    if workflow:
        where, args = f"{where} AND workflow = ?", [*args, workflow]
    hours: dict[str, list[tuple]] = {}
    for hour, *row in store.read(
        "SELECT hour, mode, foreground, sum(busy_runs), total(busy_s), total(queued_s),"
        " min(first_began), max(last_ended), min(first_queued), max(last_left)"
        f" FROM run_summaries WHERE {where} GROUP BY hour, mode, foreground", args,
    ):
        hours.setdefault(hour, []).append(tuple(row))
    return hours


def _slice_of(hour: str, edges: Edges, rows: list[tuple], timeline: Timeline) -> int | None:
    """The slice that picks every run of the hour (by finish time) and holds its busy and
    queued times whole, if one does."""
    start, end = _as_time(hour), _as_time(next_hour(hour))
    for index, (low, high) in enumerate(edges):
        if (low is None or low <= start) and (high is None or end <= high):
            floor, ceiling = timeline.bounds(index)
            began = [row[5] for row in rows if row[5] is not None]
            if (min(began, default=floor) >= floor and min(row[7] for row in rows) >= floor
                    and max(max(row[6], row[8]) for row in rows) <= ceiling):
                return index
            return None
    return None


def _as_time(hour: str) -> str:
    """An hour as the stored time it begins at."""
    return f"{hour}:00:00.000000Z"


def _merged(hours: list[tuple[str, str]]) -> list[tuple[str, str]]:
    merged: list[tuple[str, str]] = []
    for low, high in sorted(hours):
        if merged and merged[-1][1] == low:
            merged[-1] = (merged[-1][0], high)
        else:
            merged.append((low, high))
    return merged
