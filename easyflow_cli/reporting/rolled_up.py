"""The reports' view of pruned history: the rollups (`storage/rollups.py`) of the local days a
period holds, in the shapes `accounting.py` gives for the runs still in detail, to be added.

Pruned history is counted in whole local days: a day counts when it begins inside the period.
Busy and queued seconds are kept per quarter hour, each spread evenly over its quarter hour
(from the first start of its row's runs, if later), so `report pools` charts pruned history to
the quarter hour and its totals stay those of the runs.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, tzinfo
from typing import Any

from easyflow_cli.core.model import PoolName
from easyflow_cli.core.sketch import merge
from easyflow_cli.reporting.timeline import Timeline
from easyflow_cli.storage.dialect import ReportStore
from easyflow_cli.storage.rollups import CHARGE_SUMS, SLOT_S, decode

GROUP_KEYS = {"mode": "mode", "workflow": "workflow", "day": "day"}
# The cost sums, as `local_days.SUMS` names them, from the rollup columns.
COST_SUMS = ("total(settled) AS runs, total(worker_s) AS worker_s,"
             " total(cpu_s) AS cpu_s, total(energy_j) AS energy_j, total(measured) AS measured,"
             " total(unmeasured_cpu_s) AS unmeasured_cpu_s, "
             + ", ".join(f"total({c}) AS {c}" for c in CHARGE_SUMS))


def exist(store: ReportStore) -> bool:
    return store.read("SELECT 1 FROM run_rollups LIMIT 1").fetchone() is not None


def days_where(since: datetime | None, until: datetime | None, workflow: str | None,
               zone: tzinfo) -> tuple[str, list[Any]]:
    """The rollups of the local days that begin inside [since, until) (of the workflow)."""
    clauses, args = ["1 = 1"], []
    if since is not None:
        clauses.append("day >= ?")
        args.append(_first_day_from(since, zone).isoformat())
    if until is not None:
        clauses.append("day < ?")
        args.append(_first_day_from(until, zone).isoformat())
    if workflow:
        clauses.append("workflow = ?")
        args.append(workflow)
    return " AND ".join(clauses), args


def _first_day_from(moment: datetime, zone: tzinfo) -> date:
    """The first local day that begins at or after `moment`."""
    day = moment.astimezone(zone).date()
    return day if _day_start(day, zone) >= moment else day + timedelta(days=1)


def _day_start(day: date, zone: tzinfo) -> datetime:
    return datetime.combine(day, time(), zone)


def cost_sums(store: ReportStore, where: tuple[str, list[Any]], by: str) -> list[dict[str, Any]]:
    """Per (group, mode, tariff) the sums `accounting.cost_sums` gives, off the rollups."""
    clause, args = where
    rows = store.read(
        f"SELECT {GROUP_KEYS[by]} AS grp, mode, off_peak, {COST_SUMS} FROM run_rollups"
        f" WHERE {clause} AND settled > 0 GROUP BY grp, mode, off_peak", args).fetchall()
    return [dict(row) for row in rows]


def latency(store: ReportStore, where: tuple[str, list[Any]]) -> dict[str, dict[str, Any]]:
    """Per mode: settled runs, deadlines met and missed, and the wait and duration sketches."""
    clause, args = where
    modes: dict[str, dict[str, Any]] = {}
    for row in store.read(
        "SELECT mode, settled, deadlines_met, deadlines_missed, wait_sketch, duration_sketch"
        f" FROM run_rollups WHERE {clause} AND settled > 0", args,
    ):
        into = modes.setdefault(row["mode"], {"runs": 0, "deadlines_met": 0,
                                              "deadlines_missed": 0, "queue_wait_s": {},
                                              "duration_s": {}})
        into["runs"] += row["settled"]
        into["deadlines_met"] += row["deadlines_met"]
        into["deadlines_missed"] += row["deadlines_missed"]
        merge(into["queue_wait_s"], decode(row["wait_sketch"]))
        merge(into["duration_s"], decode(row["duration_sketch"]))
    return modes


def earliest_start(store: ReportStore, workflow: str | None) -> float | None:
    only, args = ("WHERE workflow = ?", [workflow]) if workflow else ("", [])
    return store.read(f"SELECT min(first_start) FROM run_rollups {only}", args).fetchone()[0]


@dataclass
class PoolSeries:
    """Where `report pools` adds a rollup row: runs per mode, foreground runs, and each mode's
    busy and queued seconds per slice."""

    runs: dict[str, int]
    busy: dict[str, list[float]]
    queued: dict[str, list[float]]
    foreground_runs: int = 0


def add_pool_use(store: ReportStore, period: tuple[datetime | None, datetime | None, str | None],
                 zone: tzinfo, timeline: Timeline, into: PoolSeries) -> None:
    """Add the rollups' runs busy in the period (finished on a day that begins after `since`,
    started before `until`, as the detail's are counted) and their seconds in the timeline.

    A row whose quarter hours lie inside one slice is added whole; only the others are read
    quarter hour by quarter hour."""
    since, until, workflow = period
    counted, args = days_where(since, None, workflow, zone)
    near = days_where(since and since - timedelta(days=2), until and until + timedelta(days=2),
                      workflow, zone)
    before = None if until is None else until.timestamp()
    for row in store.read(
        f"SELECT {store.dialect.row_id} AS rowid, mode, pool, busy_runs, busy_s, queued_s,"
        f" first_slot, last_slot, last_start_slot, first_start, ({counted}) AS counted"
        f" FROM run_rollups WHERE {near[0]}", [*args, *near[1]],
    ).fetchall():
        if row["counted"]:
            _count_runs(store, row, before, into)
        if row["first_slot"] is not None:
            _add_seconds(store, row, timeline, into)


def _count_runs(store: ReportStore, row: Any, before: float | None, into: PoolSeries) -> None:
    runs = row["busy_runs"]
    if before is not None and row["last_start_slot"] is not None and (
            (row["last_start_slot"] + 1) * SLOT_S > before):
        starts = _json(store, row["rowid"], "start_slots")
        runs = sum(count for slot, count in starts.items() if slot * SLOT_S < before)
    if row["pool"] == PoolName.FOREGROUND:
        into.foreground_runs += runs
    else:
        into.runs[row["mode"]] += runs


def _add_seconds(store: ReportStore, row: Any, timeline: Timeline, into: PoolSeries) -> None:
    mode = row["mode"]
    index = _one_slice(timeline, row["first_slot"] * SLOT_S, (row["last_slot"] + 1) * SLOT_S)
    if index is not None:
        into.busy[mode][index] += row["busy_s"]
        into.queued[mode][index] += row["queued_s"]
        return
    _spread_slots(timeline, into.busy[mode], _json(store, row["rowid"], "busy_slots"),
                  row["first_start"])
    _spread_slots(timeline, into.queued[mode], _json(store, row["rowid"], "queued_slots"), None)


def _one_slice(timeline: Timeline, begin: float, end: float) -> int | None:
    """The slice [begin, end) lies inside, if one does."""
    if begin < timeline.start or end > timeline.end:
        return None
    index = min(timeline.buckets - 1, int((begin - timeline.start) // timeline.width))
    low, high = timeline.bounds(index)
    return index if low <= begin and end <= high else None


def _json(store: ReportStore, rowid: Any, column: str) -> dict[int, Any]:
    return decode(store.read(f"SELECT {column} FROM run_rollups"
                             f" WHERE {store.dialect.row_id} = ?", (rowid,)).fetchone()[0])


def _spread_slots(timeline: Timeline, series: list[float], slots: dict[int, Any],
                  not_before: float | None) -> None:
    """Spread each quarter hour's seconds evenly over it, from `not_before` if later."""
    origin, width, buckets = timeline.start, timeline.width, timeline.buckets
    for slot, seconds in slots.items():
        begin, end = float(slot * SLOT_S), float((slot + 1) * SLOT_S)
        if not_before is not None and begin < not_before < end:
            begin = not_before
        if end <= begin:
            continue
        first, last = int((begin - origin) // width), int((end - origin) // width)
        if first == last and 0 <= first < buckets:  # most: the quarter hour in one slice
            series[first] += seconds
            continue
        for index in range(max(0, first), min(buckets - 1, last) + 1):
            low, high = timeline.bounds(index)
            overlap = min(end, high) - max(begin, low)
            if overlap > 0:
                series[index] += seconds * overlap / (end - begin)


def waits(store: ReportStore, where: tuple[str, list[Any]]) -> list[dict[str, Any]]:
    """Per rollup row: workflow, mode, settled runs, deadlines met and missed, wait sketch."""
    clause, args = where
    return [{"workflow": row["workflow"], "mode": row["mode"], "settled": row["settled"],
             "deadlines_met": row["deadlines_met"], "deadlines_missed": row["deadlines_missed"],
             "wait_sketch": decode(row["wait_sketch"])}
            for row in store.read(
                "SELECT workflow, mode, settled, deadlines_met, deadlines_missed, wait_sketch"
                f" FROM run_rollups WHERE {clause} AND settled > 0", args)]
