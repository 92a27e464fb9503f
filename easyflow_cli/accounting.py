"""Read-only aggregate queries over the runs table, for quotes and reports.

SQL does the heavy part (one indexed pass, grouped down to a handful of rows); the price model
in `costs.py` is applied to those sums, so a price change re-prices history.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from easyflow_cli.reports import nearest_rank, percentile
from easyflow_cli.store import Store
from easyflow_cli.timeutil import to_iso

GROUP_KEYS = {
    "mode": "mode",
    "workflow": "workflow",
    "day": "substr(finished_at, 1, 10)",
}
# Each grouping in the column order of an index that holds it (runs_costs, runs_costs_workflow),
# so SQLite streams the groups off the index: sorting a million runs for GROUP BY took ~1.3 s.
GROUP_BY = {
    "mode": "mode, off_peak",
    "workflow": "workflow, mode, off_peak",
    "day": "mode, off_peak, substr(finished_at, 1, 10)",
}


@dataclass(frozen=True)
class Period:
    since: datetime | None
    until: datetime | None
    workflow: str | None = None

    def where(self) -> tuple[str, list[Any]]:
        """Finished runs that occupied a worker, finished inside the period."""
        clauses, args = ["duration_s IS NOT NULL"], []
        if self.since is not None:
            clauses.append("finished_at >= ?")
            args.append(to_iso(self.since))
        if self.until is not None:
            clauses.append("finished_at < ?")
            args.append(to_iso(self.until))
        if self.workflow:
            clauses.append("workflow = ?")
            args.append(self.workflow)
        return " AND ".join(clauses), args


def has_history(store: Store, workflow: str) -> bool:
    """Runs of this workflow exist (it may since have been removed: history is kept)."""
    row = store.conn.execute("SELECT 1 FROM runs WHERE workflow = ? LIMIT 1", (workflow,))
    return row.fetchone() is not None


def cost_sums(store: Store, period: Period, by: str = "mode") -> list[dict[str, Any]]:
    """Per (group, mode, off_peak): runs, worker seconds, CPU seconds, measured joules."""
    key = GROUP_KEYS[by]
    where, args = period.where()
    rows = store.conn.execute(
        f"SELECT {key} AS grp, mode, off_peak, count(*) AS runs,"
        " total(duration_s) AS worker_s, total(cpu_user_s + cpu_system_s) AS cpu_s,"
        " total(energy_j) AS energy_j, count(energy_j) AS measured,"
        " total(CASE WHEN energy_j IS NULL THEN cpu_user_s + cpu_system_s END) AS unmeasured_cpu_s"
        f" FROM runs WHERE {where} GROUP BY {GROUP_BY[by]}", args,
    ).fetchall()
    return sorted((dict(r) for r in rows),
                  key=lambda r: (r["grp"], r["mode"], bool(r["off_peak"])))


# Below this many runs of a mode in the period, reading their values and sorting them is
# quicker than stepping an index in value order past runs the filters leave out.
FETCH_ALL_BELOW = 50_000


def latency_stats(store: Store, period: Period, quantiles: tuple[int, ...]
                  ) -> dict[str, dict[str, Any]]:
    """Per mode: runs, deadlines met/missed, and the nearest-rank percentiles of queue wait
    and duration (`reports.nearest_rank`), each read at its rank off an index in value order
    rather than by loading every run."""
    where, args = period.where()
    stats = {}
    for mode, runs, waited, met, missed in store.conn.execute(
        "SELECT mode, count(*), count(queue_wait_s), count(CASE WHEN deadline_met THEN 1 END),"
        " count(CASE WHEN NOT deadline_met THEN 1 END)"
        f" FROM runs WHERE {where} GROUP BY mode", args,
    ).fetchall():
        # One workflow's runs are quickest found through the index that leads with it, even
        # though SQLite, preferring covering indexes, would step over every run of the mode.
        found = {"where": f"{where} AND mode = ?", "args": [*args, mode],
                 "few": "INDEXED BY runs_costs_workflow" if period.workflow else ""}
        stats[mode] = {
            "runs": runs, "deadlines_met": met, "deadlines_missed": missed,
            "queue_wait_s": _percentiles(store, "queue_wait_s", "runs_waits", waited,
                                         quantiles, **found),
            "duration_s": _percentiles(store, "duration_s", "runs_durations", runs,
                                       quantiles, **found),
        }
    return stats


def _percentiles(store: Store, column: str, index: str, count: int, quantiles: tuple[int, ...],
                 where: str, args: list[Any], few: str) -> dict[int, float | None]:
    where = f"{where} AND {column} IS NOT NULL"
    if count < FETCH_ALL_BELOW:
        values = sorted(v for v, in store.conn.execute(
            f"SELECT {column} FROM runs {few} WHERE {where}", args))
        return {q: percentile(values, q) for q in quantiles}
    return {q: _ranked(store, column, index, where, args, nearest_rank(count, q), count)
            for q in quantiles}


def _ranked(store: Store, column: str, index: str, where: str, args: list[Any], rank: int,
            count: int) -> float:
    """The rank-th smallest value (1-based) of the column among the runs `where` selects."""
    # Stepping over the index is what costs: come from whichever end is nearer (p95, p99 from
    # the top). Equal values are interchangeable, so the answer is the same either way.
    order, offset = ("ASC", rank - 1) if rank - 1 <= count - rank else ("DESC", count - rank)
    return store.conn.execute(
        f"SELECT {column} FROM runs INDEXED BY {index} WHERE {where}"
        f" ORDER BY {column} {order} LIMIT 1 OFFSET ?", [*args, offset]).fetchone()[0]


def busy_intervals(store: Store, period: Period) -> list[tuple[str, str | None, float, float]]:
    """(mode, pool, start, end) in epoch seconds for runs that overlap the period."""
    clauses, args = ["started_at IS NOT NULL"], []
    if period.until is not None:
        clauses.append("started_at < ?")
        args.append(to_iso(period.until))
    if period.since is not None:
        clauses.append("(finished_at IS NULL OR finished_at >= ?)")
        args.append(to_iso(period.since))
    if period.workflow:
        clauses.append("workflow = ?")
        args.append(period.workflow)
    return store.conn.execute(
        "SELECT mode, pool, (julianday(started_at) - 2440587.5) * 86400.0,"
        " (julianday(coalesce(finished_at, strftime('%Y-%m-%dT%H:%M:%fZ', 'now')))"
        " - 2440587.5) * 86400.0"
        f" FROM runs WHERE {' AND '.join(clauses)}", args).fetchall()


def waiting_intervals(store: Store, period: Period) -> list[tuple[str, float, float]]:
    """(mode, enqueued, left the queue) in epoch seconds for runs that waited in the period."""
    left = "coalesce(claimed_at, started_at, finished_at, strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))"
    clauses, args = [], []
    if period.until is not None:
        clauses.append("enqueued_at < ?")
        args.append(to_iso(period.until))
    if period.since is not None:
        clauses.append(f"{left} >= ?")
        args.append(to_iso(period.since))
    if period.workflow:
        clauses.append("workflow = ?")
        args.append(period.workflow)
    where = f" WHERE {' AND '.join(clauses)}" if clauses else ""
    return store.conn.execute(
        "SELECT mode, (julianday(enqueued_at) - 2440587.5) * 86400.0,"
        f" (julianday({left}) - 2440587.5) * 86400.0 FROM runs{where}", args).fetchall()


def run_time_range(store: Store, period: Period) -> tuple[float, float] | None:
    """The earliest start and latest finish of runs in the period (epoch seconds)."""
    where, args = period.where()
    row = store.conn.execute(
        "SELECT (julianday(min(started_at)) - 2440587.5) * 86400.0,"
        " (julianday(max(finished_at)) - 2440587.5) * 86400.0"
        f" FROM runs WHERE {where}", args).fetchone()
    return None if row[0] is None else (row[0], row[1])


def workflow_history(store: Store, workflow: str, sample: int = 50
                     ) -> tuple[dict[str, tuple[float, float]], dict[str, int]]:
    """Per mode: median (duration, CPU seconds) of the workflow's recent successful runs."""
    by_mode: dict[str, list[tuple[float, float]]] = {}
    for mode, duration, cpu in store.conn.execute(
        "SELECT mode, duration_s, coalesce(cpu_user_s + cpu_system_s, 0) FROM runs"
        " WHERE workflow = ? AND state = 'succeeded' AND duration_s IS NOT NULL"
        " ORDER BY id DESC LIMIT ?", (workflow, sample * 3),
    ):
        samples = by_mode.setdefault(mode, [])
        if len(samples) < sample:
            samples.append((duration, cpu))
    medians = {mode: (statistics.median(d for d, _ in s), statistics.median(c for _, c in s))
               for mode, s in by_mode.items()}
    return medians, {mode: len(s) for mode, s in by_mode.items()}
