"""Reports: aggregates → stable JSON-shaped dicts → Rich renderables. No I/O here.

The dict shapes are documented in the README and are what `--json` prints; the tables and
charts are drawn from the same dicts, so the two never disagree.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from easyflow_cli.core.costs import Prices, baseline_cost, energy_wh, run_cost, savings_pct
from easyflow_cli.core.model import Mode
from easyflow_cli.reporting.timeline import Timeline

if TYPE_CHECKING:
    from easyflow_cli.reporting.accounting import PoolUse

SPARKS = "▁▂▃▄▅▆▇█"


def _round(value: float, places: int = 6) -> float:
    return round(value, places)


def _slice(seconds: float) -> str:
    """A slice width for a title: whole units when long, tenths when short."""
    from easyflow_cli.core.durations import format_duration

    return format_duration(round(seconds)) if seconds >= 10 else f"{seconds:.1f}s"


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
        "total_runs": int(total["runs"]), "total_cost": _round(total["cost"]),
        "baseline_cost": _round(total["baseline_cost"]),
        "savings": _round(total["baseline_cost"] - total["cost"]),
        "savings_pct": savings_pct(total["baseline_cost"], total["cost"]),
        "worker_hours": _round(total["worker_hours"]), "cpu_hours": _round(total["cpu_hours"]),
        "energy_wh": _round(total["energy_wh"], 3),
        "energy_source": _energy_source(measured, unmeasured),
        "watts_per_core": watts_per_core,
    }
    if by != "mode":
        report["groups"] = [{"key": key, **_public(t)} for key, t in sorted(groups.items())]
    return report


def _empty_totals() -> dict[str, float]:
    return dict(runs=0, worker_hours=0.0, cpu_hours=0.0, energy_wh=0.0, cost=0.0,
                baseline_cost=0.0, off_peak_runs=0)


def _price_row(row: dict[str, Any], prices: Prices, watts: float) -> dict[str, float]:
    off_peak = bool(row["off_peak"])
    return dict(
        runs=row["runs"], worker_hours=row["worker_s"] / 3600, cpu_hours=row["cpu_s"] / 3600,
        energy_wh=row["energy_j"] / 3600 + energy_wh(row["unmeasured_cpu_s"], watts),
        cost=run_cost(prices, row["mode"], off_peak, row["worker_s"], row["cpu_s"]),
        baseline_cost=baseline_cost(prices, row["worker_s"], row["cpu_s"]),
        off_peak_runs=row["runs"] if off_peak else 0,
    )


def _add(into: dict[str, float], other: dict[str, float]) -> None:
    for key, value in other.items():
        into[key] += value


def _public(totals: dict[str, float]) -> dict[str, Any]:
    runs = int(totals["runs"])
    return {
        "runs": runs, "worker_hours": _round(totals["worker_hours"]),
        "cpu_hours": _round(totals["cpu_hours"]), "energy_wh": _round(totals["energy_wh"], 3),
        "cost": _round(totals["cost"]),
        "cost_per_run": _round(totals["cost"] / runs, 8) if runs else None,
        "baseline_cost": _round(totals["baseline_cost"]),
        "savings": _round(totals["baseline_cost"] - totals["cost"]),
        "off_peak_runs": int(totals["off_peak_runs"]),
    }


def _energy_source(measured: int, unmeasured: int) -> str:
    if measured and unmeasured:
        return "mixed"
    return "rapl" if measured else "estimate"


# --------------------------------------------------------------------------- latency


QUANTILES = (50, 95, 99)


def nearest_rank(count: int, q: float) -> int | None:
    """The 1-based rank of the q-th percentile among `count` sorted values (None if none)."""
    return max(1, math.ceil(q / 100 * count)) if count else None


def percentile(sorted_values: list[float], q: float) -> float | None:
    """Nearest-rank percentile: the smallest value with at least q% of values at or below it."""
    rank = nearest_rank(len(sorted_values), q)
    return None if rank is None else sorted_values[rank - 1]


def _percentiles(values: dict[int, float | None]) -> dict[str, float | None]:
    return {f"p{q}": None if (v := values.get(q)) is None else round(v, 6) for q in QUANTILES}


def latency_report(stats: dict[str, dict[str, Any]], period: dict[str, Any]) -> dict[str, Any]:
    """`stats` as `accounting.latency_stats` gives them: per mode, percentiles by quantile."""
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
    return {"period": period, "by_mode": by_mode}


# --------------------------------------------------------------------------- pools


def pools_report(use: PoolUse, workers: dict[str, int], depth_now: dict[str, int],
                 timeline: Timeline, period: dict[str, Any]) -> dict[str, Any]:
    """Utilization of each pool over the timeline and queue depth by mode, slice by slice."""
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
        "queue_depth": {
            "now": depth_now,
            "mean_series": {m: [round(v / width, 2) for v in s] for m, s in use.queued_s.items()},
        },
    }


def sparkline(values: list[float], ceiling: float | None = None) -> str:
    top = ceiling if ceiling else max(values, default=0)
    if not values or top <= 0:
        return SPARKS[0] * len(values)
    return "".join(SPARKS[min(len(SPARKS) - 1, int(v / top * (len(SPARKS) - 1) + 0.5))]
                   for v in values)


# --------------------------------------------------------------------------- rendering


def money(value: float | None, currency: str) -> str:
    if value is None:
        return "-"
    symbol = {"USD": "$", "EUR": "€", "GBP": "£"}.get(currency, currency + " ")
    if value == 0:
        return f"{symbol}0.00"
    if abs(value) >= 0.01:
        return f"{symbol}{value:,.2f}"
    return f"{symbol}{value:.6f}".rstrip("0")


def render_costs(report: dict[str, Any]):
    from rich.console import Group
    from rich.table import Table
    from rich.text import Text

    currency = report["currency"]
    table = Table(title="Cost by mode", header_style="bold", title_justify="left")
    for column in ("mode", "runs", "worker-h", "CPU-h", "energy Wh", "cost", "per run",
                   "off-peak runs"):
        table.add_column(column, justify="left" if column == "mode" else "right")
    for mode, row in report["by_mode"].items():
        table.add_row(mode, str(row["runs"]), f"{row['worker_hours']:.4f}",
                      f"{row['cpu_hours']:.4f}", f"{row['energy_wh']:.2f}",
                      money(row["cost"], currency), money(row["cost_per_run"], currency),
                      str(row["off_peak_runs"]))
    table.add_section()
    table.add_row("total", str(report["total_runs"]), f"{report['worker_hours']:.4f}",
                  f"{report['cpu_hours']:.4f}", f"{report['energy_wh']:.2f}",
                  money(report["total_cost"], currency), "", "", style="bold")
    parts = [table]
    if "groups" in report:
        parts.append(_group_table(report))
    summary = Text()
    summary.append("Savings against all-real-time at peak price: ", style="bold")
    summary.append(f"{money(report['savings'], currency)} ({report['savings_pct']:.1f}%)",
                   style="bold green" if report["savings"] > 0 else "bold")
    summary.append(f"  — baseline {money(report['baseline_cost'], currency)}, actual "
                   f"{money(report['total_cost'], currency)}\n")
    source = {"estimate": f"estimated from CPU time at {report['watts_per_core']} W per busy core",
              "rapl": "measured with RAPL package counters",
              "mixed": "partly RAPL-measured, partly estimated from CPU time"}
    summary.append(f"Energy {source[report['energy_source']]}.", style="dim")
    parts.append(summary)
    return Group(*parts)


def _group_table(report: dict[str, Any]):
    from rich.table import Table

    currency = report["currency"]
    table = Table(title=f"Cost by {report['by']}", header_style="bold", title_justify="left")
    for column in (report["by"], "runs", "worker-h", "cost", "per run", "savings"):
        table.add_column(column, justify="left" if column == report["by"] else "right")
    for row in report["groups"]:
        table.add_row(row["key"], str(row["runs"]), f"{row['worker_hours']:.4f}",
                      money(row["cost"], currency), money(row["cost_per_run"], currency),
                      money(row["savings"], currency))
    return table


def render_latency(report: dict[str, Any]):
    from rich.table import Table

    table = Table(title="Latency by mode (seconds)", header_style="bold", title_justify="left")
    for column in ("mode", "runs", "wait p50", "wait p95", "wait p99", "run p50", "run p95",
                   "run p99", "deadlines met", "missed"):
        table.add_column(column, justify="left" if column == "mode" else "right")
    for mode, row in report["by_mode"].items():
        waits, runs = row["queue_wait_s"], row["duration_s"]
        table.add_row(mode, str(row["runs"]), *(_secs(waits[p]) for p in ("p50", "p95", "p99")),
                      *(_secs(runs[p]) for p in ("p50", "p95", "p99")),
                      str(row["deadlines_met"]), str(row["deadlines_missed"]))
    return table


def _secs(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:.3f}" if value < 100 else f"{value:.0f}"


def render_pools(report: dict[str, Any]):
    from rich.console import Group
    from rich.table import Table

    table = Table(title=f"Pool utilization ({report['buckets']} slices of "
                        f"{_slice(report['bucket_s'])})", header_style="bold",
                  title_justify="left")
    for column in ("pool", "workers", "runs", "busy h", "utilization", "over time"):
        table.add_column(column, justify="left" if column in ("pool", "over time") else "right")
    for mode, row in report["pools"].items():
        table.add_row(mode, str(row["workers"]), str(row["runs"]), f"{row['busy_hours']:.4f}",
                      f"{row['utilization_pct']:.1f}%",
                      sparkline(row["utilization_series"], 100.0))
    depth = Table(title="Queue depth by mode", header_style="bold", title_justify="left")
    for column in ("mode", "now", "mean over time"):
        depth.add_column(column, justify="left" if column != "now" else "right")
    for mode, series in report["queue_depth"]["mean_series"].items():
        depth.add_row(mode, str(report["queue_depth"]["now"].get(mode, 0)), sparkline(series))
    return Group(table, depth)
