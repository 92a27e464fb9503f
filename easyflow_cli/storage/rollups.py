"""Rolled-up history: what pruned runs leave behind, per local day × workflow × mode × pool ×
tariff, in the `run_rollups` table (migration 6 in `store.py`).

A rollup keeps what the reports add up, in the form they add it: the sums `report costs`
prices (so a pruned run is priced as it was before), the counts and sketches `report latency`
reads, and the busy and queued seconds `report pools` charts, per quarter hour. Rows only grow:
pruning more runs of a day adds to its row.
"""

from __future__ import annotations

import json
import math
import sqlite3
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import tzinfo
from typing import Any

from easyflow_cli.core.model import PoolName, RunState
from easyflow_cli.core.sketch import Sketch, bucket_of, merge
from easyflow_cli.core.timeutil import from_iso

SLOT_S = 900  # busy and queued time is kept per quarter hour: every zone's days start on one
NO_POOL = ""  # never claimed by a pool (cancelled while queued)
# The columns of a run that its rollup needs, in `add`'s order.
RUN_COLUMNS = ("workflow", "mode", "pool", "off_peak", "state", "enqueued_at", "claimed_at",
               "started_at", "finished_at", "duration_s", "cpu_user_s", "cpu_system_s",
               "energy_j", "queue_wait_s", "deadline_met", "tariff_cost", "tariff_baseline_cost",
               "carbon_g", "baseline_carbon_g")
KEY_COLUMNS = ("day", "workflow", "mode", "pool", "off_peak")
COUNT_COLUMNS = ("runs", "succeeded", "failed", "timed_out", "cancelled", "settled",
                 "measured", "deadlines_met", "deadlines_missed", "busy_runs")
# The sums the table is created with; a later migration adds the charges.
TABLE_SUM_COLUMNS = ("worker_s", "cpu_s", "energy_j", "unmeasured_cpu_s", "busy_s", "queued_s")
# What runs were charged under a tariff or carbon forecast (`core/receipts.py`), with the worker
# and CPU time of the tariff's runs, which the pools' prices do not price.
CHARGE_SUMS = ("tariff_worker_s", "tariff_cpu_s", "tariff_cost", "tariff_baseline_cost",
               "carbon_g", "baseline_carbon_g")
SUM_COLUMNS = TABLE_SUM_COLUMNS + CHARGE_SUMS
# The quarter hours its seconds and starts span: a row lying inside one slice of a report's
# timeline is added up whole, without reading its slots.
SPAN_COLUMNS = ("first_slot", "last_slot", "last_start_slot")
JSON_COLUMNS = ("wait_sketch", "duration_sketch", "busy_slots", "queued_slots", "start_slots")
COLUMNS = KEY_COLUMNS + COUNT_COLUMNS + SUM_COLUMNS + JSON_COLUMNS + SPAN_COLUMNS + (
    "first_start",)


def create_table(conn: Any) -> None:
    counts = ", ".join(f"{c} INTEGER NOT NULL DEFAULT 0" for c in COUNT_COLUMNS)
    sums = ", ".join(f"{c} REAL NOT NULL DEFAULT 0" for c in TABLE_SUM_COLUMNS)
    sketches = ", ".join(f"{c} TEXT NOT NULL DEFAULT '{{}}'" for c in JSON_COLUMNS)
    conn.execute(f"CREATE TABLE run_rollups (day TEXT NOT NULL, workflow TEXT NOT NULL,"
                 f" mode TEXT NOT NULL, pool TEXT NOT NULL, off_peak INTEGER NOT NULL,"
                 f" {counts}, {sums}, {sketches}, first_slot INTEGER, last_slot INTEGER,"
                 f" last_start_slot INTEGER, first_start REAL,"
                 f" PRIMARY KEY ({', '.join(KEY_COLUMNS)}))")


def add_charge_columns(conn: Any) -> None:
    for column in CHARGE_SUMS:
        conn.execute(f"ALTER TABLE run_rollups ADD COLUMN {column} REAL NOT NULL DEFAULT 0")


@dataclass
class Rollup:
    """One row of `run_rollups`: the key, counts, sums, sketches and quarter-hour seconds."""

    key: tuple[str, str, str, str, int]
    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(COUNT_COLUMNS, 0))
    sums: dict[str, list[float]] = field(default_factory=lambda: {c: [] for c in SUM_COLUMNS})
    sketches: dict[str, dict[int, Any]] = field(
        default_factory=lambda: {c: {} for c in JSON_COLUMNS})
    first_start: float | None = None

    def add(self, run: Mapping[str, Any]) -> None:
        counts = self.counts
        counts["runs"] += 1
        state = run["state"]
        if state != RunState.SUCCEEDED:
            counts[state] += 1
        else:
            counts["succeeded"] += 1
        if run["duration_s"] is not None:
            self._add_settled(run)
        if run["started_at"] is not None:
            self._add_busy(run)
        left = run["claimed_at"] or run["started_at"] or run["finished_at"]
        enqueued, left_at = _epoch(run["enqueued_at"]), _epoch(left)
        _spread(self.sketches["queued_slots"], enqueued, left_at)
        self.sums["queued_s"].append(max(0.0, left_at - enqueued))

    def _add_settled(self, run: Mapping[str, Any]) -> None:
        """What the cost and latency reports count: runs that occupied a worker."""
        counts, sums = self.counts, self.sums
        counts["settled"] += 1
        sums["worker_s"].append(run["duration_s"])
        cpu = _cpu(run)
        if cpu is not None:
            sums["cpu_s"].append(cpu)
        if run["energy_j"] is not None:
            counts["measured"] += 1
            sums["energy_j"].append(run["energy_j"])
        elif cpu is not None:
            sums["unmeasured_cpu_s"].append(cpu)
        if run["deadline_met"] is not None:
            counts["deadlines_met" if run["deadline_met"] else "deadlines_missed"] += 1
        self._add_charges(run, cpu)
        _count(self.sketches["duration_sketch"], bucket_of(run["duration_s"]))
        if run["queue_wait_s"] is not None:
            _count(self.sketches["wait_sketch"], bucket_of(run["queue_wait_s"]))

    def _add_charges(self, run: Mapping[str, Any], cpu: float | None) -> None:
        sums = self.sums
        if run["tariff_cost"] is not None:
            sums["tariff_worker_s"].append(run["duration_s"])
            sums["tariff_cpu_s"].append(cpu or 0.0)
            sums["tariff_cost"].append(run["tariff_cost"])
            sums["tariff_baseline_cost"].append(run["tariff_baseline_cost"] or 0.0)
        if run["carbon_g"] is not None:
            sums["carbon_g"].append(run["carbon_g"])
            sums["baseline_carbon_g"].append(run["baseline_carbon_g"] or 0.0)

    def _add_busy(self, run: Mapping[str, Any]) -> None:
        """Started runs: counted by the quarter hour they started in (`report pools` counts
        the runs busy in its period); their busy time kept unless no pool worker ran them."""
        began, ended = _epoch(run["started_at"]), _epoch(run["finished_at"])
        self.counts["busy_runs"] += 1
        _count(self.sketches["start_slots"], int(began // SLOT_S))
        if self.first_start is None or began < self.first_start:
            self.first_start = began
        if run["pool"] != PoolName.FOREGROUND:
            _spread(self.sketches["busy_slots"], began, ended)
            self.sums["busy_s"].append(max(0.0, ended - began))


def rollups_of(runs: Iterable[Mapping[str, Any]], zone: tzinfo) -> list[Rollup]:
    """The finished runs' rollups, one per key (their local day in `zone`)."""
    rollups: dict[tuple, Rollup] = {}
    for run in runs:
        key = _key(run, zone)
        rollup = rollups.get(key)
        if rollup is None:
            rollup = rollups[key] = Rollup(key)
        rollup.add(run)
    return list(rollups.values())


def add_rollups(conn: sqlite3.Connection, rollups: Iterable[Rollup]) -> None:
    """Add to the stored rows (inside the caller's transaction)."""
    for rollup in rollups:
        row = conn.execute(
            f"SELECT {', '.join(COLUMNS)} FROM run_rollups WHERE"
            f" {' AND '.join(f'{c} = ?' for c in KEY_COLUMNS)}", rollup.key).fetchone()
        conn.execute(f"INSERT OR REPLACE INTO run_rollups ({', '.join(COLUMNS)})"
                     f" VALUES ({', '.join('?' for _ in COLUMNS)})", merged_row(rollup, row))


def merged_row(rollup: Rollup, row: Mapping[str, Any] | None) -> tuple:
    """The stored row (if any) with the rollup added, as values in COLUMNS order."""
    counts = [rollup.counts[c] + (row[c] if row else 0) for c in COUNT_COLUMNS]
    sums = [math.fsum([*rollup.sums[c], row[c] if row else 0.0]) for c in SUM_COLUMNS]
    sketches = []
    for column in JSON_COLUMNS:
        into = decode(row[column]) if row else {}
        if column.endswith("_sketch"):
            merge(into, rollup.sketches[column])
        else:
            _add_slots(into, rollup.sketches[column])
        sketches.append(json.dumps(into, separators=(",", ":")))
    slots = [*rollup.sketches["busy_slots"], *rollup.sketches["queued_slots"]]
    starts = list(rollup.sketches["start_slots"])
    spans = (_extreme(min, slots, row, "first_slot"), _extreme(max, slots, row, "last_slot"),
             _extreme(max, starts, row, "last_start_slot"))
    first = _extreme(min, [rollup.first_start] if rollup.first_start is not None else [], row,
                     "first_start")
    return (*rollup.key, *counts, *sums, *sketches, *spans, first)


def _extreme(pick: Any, values: list[Any], row: Mapping[str, Any] | None, column: str) -> Any:
    """The least or greatest of new values and the stored one (None when there is neither)."""
    known = [*values, *([row[column]] if row and row[column] is not None else [])]
    return pick(known) if known else None


def decode(text: str) -> dict[int, Any]:
    """A stored sketch or slot map, with its keys as numbers again."""
    return {int(k): v for k, v in json.loads(text).items()}


def _add_slots(into: dict[int, Any], other: Mapping[int, Any]) -> None:
    for slot, seconds in other.items():
        into[slot] = into.get(slot, 0.0) + seconds


def _key(run: Mapping[str, Any], zone: tzinfo) -> tuple[str, str, str, str, int]:
    finished = from_iso(run["finished_at"])
    assert finished is not None  # only finished runs are rolled up
    day = finished.astimezone(zone).date().isoformat()
    return (day, run["workflow"], run["mode"], run["pool"] or NO_POOL, int(bool(run["off_peak"])))


def _cpu(run: Mapping[str, Any]) -> float | None:
    user, system = run["cpu_user_s"], run["cpu_system_s"]
    return None if user is None or system is None else user + system


def _count(sketch: Sketch, bucket: int) -> None:
    sketch[bucket] = sketch.get(bucket, 0) + 1


def _epoch(stamp: str | None) -> float:
    moment = from_iso(stamp)
    assert moment is not None
    return moment.timestamp()


def _spread(slots: dict[int, Any], begin: float, end: float) -> None:
    """Add the seconds of [begin, end) to the quarter hours they fall in."""
    slot = int(begin // SLOT_S)
    while begin < end:
        upto = min(end, (slot + 1) * SLOT_S)
        slots[slot] = slots.get(slot, 0.0) + (upto - begin)
        begin, slot = upto, slot + 1
