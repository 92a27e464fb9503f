"""The reports' view of pruned history: the rollups (`storage/rollups.py`) of the local days a
period holds, in the shapes `accounting.py` gives for the runs still in detail, to be added.

Pruned history is counted in whole local days: a day counts when it begins inside the period.
Busy and queued seconds are kept per quarter hour, each spread evenly over its quarter hour
(from the first start of its row's runs, if later), so `report pools` charts pruned history to
the quarter hour and its totals stay those of the runs.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date, datetime, time, timedelta, tzinfo
from typing import Any

from easyflow_cli.core.model import PoolName
from easyflow_cli.core.sketch import merge
from easyflow_cli.reporting.timeline import Timeline
from easyflow_cli.storage.rollups import SLOT_S, decode
from easyflow_cli.storage.store import Store

GROUP_KEYS = {"mode": "mode", "workflow": "workflow", "day": "day"}
# The cost sums, as `local_days.SUMS` names them, from the rollup columns.
COST_SUMS = ("total(settled) AS runs, total(worker_s) AS worker_s,"
             " total(cpu_s) AS cpu_s, total(energy_j) AS energy_j, total(measured) AS measured,"
             " total(unmeasured_cpu_s) AS unmeasured_cpu_s")


def exist(store: Store) -> bool:
    return store.conn.execute("SELECT 1 FROM run_rollups LIMIT 1").fetchone() is not None


def days_where(since: datetime | None, until: datetime | None, workflow: str | None,
               zone: tzinfo) -> tuple[str, list[Any]]:
    """The rollups of the local days that begin inside [since, until) (of the workflow)."""
    clauses, args = ["1"], []
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


def cost_sums(store: Store, where: tuple[str, list[Any]], by: str) -> list[dict[str, Any]]:
    """Per (group, mode, tariff) the sums `accounting.cost_sums` gives, off the rollups."""
    clause, args = where
    rows = store.conn.execute(
        f"SELECT {GROUP_KEYS[by]} AS grp, mode, off_peak, {COST_SUMS} FROM run_rollups"
        f" WHERE {clause} AND settled > 0 GROUP BY grp, mode, off_peak", args).fetchall()
    return [dict(row) for row in rows]


def latency(store: Store, where: tuple[str, list[Any]]) -> dict[str, dict[str, Any]]:
    """Per mode: settled runs, deadlines met and missed, and the wait and duration sketches."""
    clause, args = where
    modes: dict[str, dict[str, Any]] = {}
    for row in store.conn.execute(
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


def earliest_start(store: Store, workflow: str | None) -> float | None:
    only, args = ("WHERE workflow = ?", [workflow]) if workflow else ("", [])
    return store.conn.execute(f"SELECT min(first_start) FROM run_rollups {only}",
                              args).fetchone()[0]


def pool_rows(store: Store, since: datetime | None, until: datetime | None,
              workflow: str | None, zone: tzinfo) -> Iterator[dict[str, Any]]:
    """Every rollup row that may hold seconds inside [since, until), with `busy_runs`: its
    runs busy in the period (finished on a day that begins after `since`, started before
    `until`), as the detail's are counted."""
    clause, args = days_where(since, None, workflow, zone)
    near = days_where(since and since - timedelta(days=2), until and until + timedelta(days=2),
                      workflow, zone)
    before = None if until is None else until.timestamp()
    for row in store.conn.execute(
        f"SELECT mode, pool, start_slots, busy_slots, queued_slots, first_start,"
        f" ({clause}) AS counted FROM run_rollups WHERE {near[0]}", [*args, *near[1]],
    ):
        starts = decode(row["start_slots"]) if row["counted"] else {}
        yield {**dict(row), "busy_runs": sum(
            count for slot, count in starts.items() if before is None or slot * SLOT_S < before)}


def add_pool_row(row: dict[str, Any], timeline: Timeline, runs: dict[str, int],
                 busy: list[float], queued: list[float]) -> int:
    """Add a rollup row's seconds to the mode's series and its runs to `runs`; the foreground
    runs it holds (which held no pool worker)."""
    if row["pool"] == PoolName.FOREGROUND:
        return row["busy_runs"]
    runs[row["mode"]] += row["busy_runs"]
    first = row["first_start"]
    for slot, seconds in decode(row["busy_slots"]).items():
        _spread_slot(timeline, busy, slot, seconds, first)
    for slot, seconds in decode(row["queued_slots"]).items():
        _spread_slot(timeline, queued, slot, seconds, None)
    return 0


def _spread_slot(timeline: Timeline, series: list[float], slot: int, seconds: float,
                 not_before: float | None) -> None:
    """Spread a quarter hour's seconds evenly over it, from `not_before` if later."""
    begin, end = float(slot * SLOT_S), float((slot + 1) * SLOT_S)
    if not_before is not None and begin < not_before < end:
        begin = not_before
    span = end - begin
    if span <= 0:
        return
    width = timeline.width
    first = max(0, int((begin - timeline.start) // width))
    last = min(timeline.buckets - 1, int((end - timeline.start) // width))
    for index in range(first, last + 1):
        low, high = timeline.bounds(index)
        overlap = min(end, high) - max(begin, low)
        if overlap > 0:
            series[index] += seconds * overlap / span
