"""Read-only aggregate queries over the runs table, for quotes and reports.

SQL does the heavy part (one indexed pass, grouped down to a handful of rows); the price model
in `costs.py` is applied to those sums, so a price change re-prices history.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from easyflow_cli.store import Store
from easyflow_cli.timeutil import to_iso

GROUP_KEYS = {
    "mode": "mode",
    "workflow": "workflow",
    "day": "substr(finished_at, 1, 10)",
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
    # Grouped by the expressions themselves, each once: `GROUP BY grp, mode, ...` with grp an
    # alias of mode made SQLite sort every row in a temporary b-tree (1.2 s over a million
    # runs) instead of streaming the groups off runs_costs, which leads with mode, off_peak.
    group_by = ", ".join(dict.fromkeys((key, "mode", "off_peak")))
    where, args = period.where()
    rows = store.conn.execute(
        f"SELECT {key} AS grp, mode, off_peak, count(*) AS runs,"
        " total(duration_s) AS worker_s, total(cpu_user_s + cpu_system_s) AS cpu_s,"
        " total(energy_j) AS energy_j, count(energy_j) AS measured,"
        " total(CASE WHEN energy_j IS NULL THEN cpu_user_s + cpu_system_s END) AS unmeasured_cpu_s"
        f" FROM runs WHERE {where} GROUP BY {group_by}"
        "", args,
    ).fetchall()
    return sorted((dict(r) for r in rows),
                  key=lambda r: (r["grp"], r["mode"], bool(r["off_peak"])))


def latency_samples(store: Store, period: Period) -> dict[str, dict[str, Any]]:
    """Per mode: sorted queue waits and durations, and deadlines met/missed."""
    where, args = period.where()
    out: dict[str, dict[str, Any]] = {}
    for mode, wait, duration, met in store.conn.execute(
        f"SELECT mode, queue_wait_s, duration_s, deadline_met FROM runs WHERE {where}", args
    ):
        bucket = out.setdefault(mode, {"waits": [], "durations": [], "met": 0, "missed": 0})
        if wait is not None:
            bucket["waits"].append(wait)
        bucket["durations"].append(duration)
        if met is not None:
            bucket["met" if met else "missed"] += 1
    for bucket in out.values():
        bucket["waits"].sort()
        bucket["durations"].sort()
    return out


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
