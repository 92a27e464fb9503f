"""The reports drawn for a terminal: Rich tables and sparklines from the report dicts.

`reporting.reports` makes the dicts (what `--json` prints); this draws the same dicts, so a
table never disagrees with the JSON.
"""

from __future__ import annotations

from typing import Any

from rich.console import Group
from rich.table import Table
from rich.text import Text

from easyflow_cli.core.durations import format_duration

SPARKS = "▁▂▃▄▅▆▇█"


def money(value: float | None, currency: str) -> str:
    """An amount for people: cents when it has them, significant digits when it is smaller."""
    if value is None:
        return "-"
    symbol = {"USD": "$", "EUR": "€", "GBP": "£"}.get(currency, currency + " ")
    if value == 0:
        return f"{symbol}0.00"
    if abs(value) >= 0.01:
        return f"{symbol}{value:,.2f}"
    return f"{symbol}{value:.6f}".rstrip("0")


def render_costs(report: dict[str, Any]) -> Group:
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
    parts: list[Table | Text] = [table]
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


def _group_table(report: dict[str, Any]) -> Table:
    currency = report["currency"]
    table = Table(title=f"Cost by {report['by']}", header_style="bold", title_justify="left")
    for column in (report["by"], "runs", "worker-h", "cost", "per run", "savings"):
        table.add_column(column, justify="left" if column == report["by"] else "right")
    for row in report["groups"]:
        table.add_row(row["key"], str(row["runs"]), f"{row['worker_hours']:.4f}",
                      money(row["cost"], currency), money(row["cost_per_run"], currency),
                      money(row["savings"], currency))
    return table


def render_latency(report: dict[str, Any]) -> Table:
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


def render_pools(report: dict[str, Any]) -> Group:
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


def sparkline(values: list[float], ceiling: float | None = None) -> str:
    """One block character per value, scaled to `ceiling` (or to the largest value)."""
    top = ceiling if ceiling else max(values, default=0)
    if not values or top <= 0:
        return SPARKS[0] * len(values)
    return "".join(SPARKS[min(len(SPARKS) - 1, int(v / top * (len(SPARKS) - 1) + 0.5))]
                   for v in values)


def _slice(seconds: float) -> str:
    """A slice width for a title: whole units when long, tenths when short."""
    return format_duration(round(seconds)) if seconds >= 10 else f"{seconds:.1f}s"
