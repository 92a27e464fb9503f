"""Reports: aggregates → stable JSON-shaped dicts. No I/O and no drawing here.

The dicts are what `--json` prints; the cli draws its tables and charts from the same dicts
(`cli/report_render.py`), so the two never disagree.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from easyflow_cli.core.costs import (
    Prices,
    baseline_cost,
    energy_wh,
    exact,
    run_cost,
    savings_pct,
)
from easyflow_cli.core.model import Mode
from easyflow_cli.reporting.timeline import Timeline

if TYPE_CHECKING:
    from easyflow_cli.reporting.accounting import NodeUse, PoolUse



# --------------------------------------------------------------------------- costs


def cost_report(sums: list[dict[str, Any]], prices: Prices, watts_per_core: float,
                by: str, period: dict[str, Any]) -> dict[str, Any]:
    """Price the grouped sums: per mode, per group (workflow or day), totals and savings."""
    by_mode = {mode.value: _empty_totals() for mode in Mode}
    groups: dict[str, dict[str, float]] = {}
    measured = unmeasured = 0
    for row in sums:
        priced = _price_row(row, prices, watts_per_core)
        _add(by_mode[row["mode"]], priced)
        if by != "mode":
            _add(groups.setdefault(row["grp"], _empty_totals()), priced)
        measured += row["measured"]
        unmeasured += row["runs"] - row["measured"]
    total = _empty_totals()
    for totals in by_mode.values():
        _add(total, totals)
    report = {
        "currency": prices.currency, "period": period, "by": by,
        "by_mode": {mode: _public(t) for mode, t in by_mode.items()},
        "total_runs": int(total["runs"]), "total_cost": exact(total["cost"]),
        "baseline_cost": exact(total["baseline_cost"]),
        "savings": exact(total["baseline_cost"] - total["cost"]),
        "savings_pct": savings_pct(total["baseline_cost"], total["cost"]),
        "worker_hours": exact(total["worker_hours"]), "cpu_hours": exact(total["cpu_hours"]),
        "energy_wh": exact(total["energy_wh"]),
        "energy_source": _energy_source(measured, unmeasured),
        "carbon_g": exact(total["carbon_g"]),
        "baseline_carbon_g": exact(total["baseline_carbon_g"]),
        "watts_per_core": watts_per_core,
    }
    if by != "mode":
        report["groups"] = [{"key": key, **_public(t)} for key, t in sorted(groups.items())]
    return report


def _empty_totals() -> dict[str, float]:
    return dict(runs=0, worker_hours=0.0, cpu_hours=0.0, energy_wh=0.0, cost=0.0,
                baseline_cost=0.0, off_peak_runs=0, carbon_g=0.0, baseline_carbon_g=0.0)


def _price_row(row: dict[str, Any], prices: Prices, watts: float) -> dict[str, float]:
    """A row's cost: its runs a tariff priced as they ended at what they were charged, the
    others at the pools' prices (so the total is the sum of the runs' receipts)."""
    off_peak = bool(row["off_peak"])
    flat_s = row["worker_s"] - row.get("tariff_worker_s", 0)
    flat_cpu_s = row["cpu_s"] - row.get("tariff_cpu_s", 0)
    return dict(
        runs=row["runs"], worker_hours=row["worker_s"] / 3600, cpu_hours=row["cpu_s"] / 3600,
        energy_wh=row["energy_j"] / 3600 + energy_wh(row["unmeasured_cpu_s"], watts),
        cost=run_cost(prices, row["mode"], off_peak, flat_s, flat_cpu_s)
        + row.get("tariff_cost", 0),
        baseline_cost=baseline_cost(prices, flat_s, flat_cpu_s)
        + row.get("tariff_baseline_cost", 0),
        off_peak_runs=row["runs"] if off_peak else 0,
        carbon_g=row.get("carbon_g", 0), baseline_carbon_g=row.get("baseline_carbon_g", 0),
    )


def _add(into: dict[str, float], other: dict[str, float]) -> None:
    for key, value in other.items():
        into[key] += value


def _public(totals: dict[str, float]) -> dict[str, Any]:
    runs = int(totals["runs"])
    return {
        "runs": runs, "worker_hours": exact(totals["worker_hours"]),
        "cpu_hours": exact(totals["cpu_hours"]), "energy_wh": exact(totals["energy_wh"]),
        "cost": exact(totals["cost"]),
        "cost_per_run": exact(totals["cost"] / runs) if runs else None,
        "baseline_cost": exact(totals["baseline_cost"]),
        "savings": exact(totals["baseline_cost"] - totals["cost"]),
        "off_peak_runs": int(totals["off_peak_runs"]),
    }


def _energy_source(measured: int, unmeasured: int) -> str:
    if measured and unmeasured:
        return "mixed"
    return "rapl" if measured else "estimate"


# --------------------------------------------------------------------------- latency


QUANTILES = (50, 95, 99)


def _percentiles(values: dict[int, float | None]) -> dict[str, float | None]:
    return {f"p{q}": None if (v := values.get(q)) is None else round(v, 6) for q in QUANTILES}


def latency_report(stats: dict[str, dict[str, Any]], period: dict[str, Any],
                   attainment: dict[str, Any] | None = None) -> dict[str, Any]:
    """`stats` as `accounting.latency_stats` gives them: per mode, percentiles by quantile;
    with the attainment of each mode's objective (`attainment.attainment_report`)."""
    by_mode = {}
    for mode in Mode:
        row = stats.get(mode.value, {"runs": 0, "queue_wait_s": {}, "duration_s": {},
                                     "deadlines_met": 0, "deadlines_missed": 0})
        by_mode[mode.value] = {
            "runs": row["runs"],
            "queue_wait_s": _percentiles(row["queue_wait_s"]),
            "duration_s": _percentiles(row["duration_s"]),
            "deadlines_met": row["deadlines_met"], "deadlines_missed": row["deadlines_missed"],
        }
    report = {"period": period, "by_mode": by_mode}
    return report if attainment is None else report | {"attainment": attainment}


# --------------------------------------------------------------------------- pools


def pools_report(use: PoolUse, workers: dict[str, int], depth_now: dict[str, int],
                 timeline: Timeline, period: dict[str, Any]) -> dict[str, Any]:
    """Utilization of each pool over the timeline and queue depth by mode, slice by slice;
    what each machine (host) ran of the runs still in detail."""
    width, span = timeline.width, timeline.span
    pools = {}
    for mode in Mode:
        capacity = workers[mode.value] * width
        busy_s = use.busy_s[mode.value]
        series = [round(100 * s / capacity, 1) if capacity else 0.0 for s in busy_s]
        total = sum(busy_s)
        pools[mode.value] = {
            "workers": workers[mode.value], "runs": use.runs[mode.value],
            "busy_hours": round(total / 3600, 6),
            "utilization_pct": round(100 * total / (workers[mode.value] * span), 2),
            "utilization_series": series,
        }
    return {
        "period": period, "buckets": timeline.buckets, "bucket_s": round(width, 3),
        "pools": pools, "foreground_runs": use.foreground_runs,
        "nodes": [_node(host, node) for host, node in
                  sorted(use.nodes.items(), key=lambda item: (item[0] is None, item[0] or ""))],
        "queue_depth": {
            "now": depth_now,
            "mean_series": {m: [round(v / width, 2) for v in s] for m, s in use.queued_s.items()},
        },
    }


def _node(host: str | None, node: NodeUse) -> dict[str, Any]:
    return {
        "host": host, "runs": sum(node.runs.values()),
        "busy_hours": round(sum(node.busy_s.values()) / 3600, 6),
        "pools": {mode.value: {"runs": node.runs[mode.value],
                               "busy_hours": round(node.busy_s[mode.value] / 3600, 6)}
                  for mode in Mode},
    }
