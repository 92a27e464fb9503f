"""The reports drawn for a terminal: Rich tables and sparklines from the report dicts.

`reporting.reports` makes the dicts (what `--json` prints); this draws the same dicts, so a
table never disagrees with the JSON.
"""

from __future__ import annotations

from typing import Any

from rich.console import Group
from rich.table import Table
from rich.text import Text

from easyflow_cli.cli.money import adds_up, money, money_column
from easyflow_cli.core.durations import format_duration
from easyflow_cli.core.words import plural

__all__ = ["money", "render_advice", "render_costs", "render_latency", "render_pools",
           "sparkline"]

SPARKS = "▁▂▃▄▅▆▇█"
POOLS_NOTE = ("{foreground} ran in the foreground (no daemon up), outside the pools. A run "
              "counts here in the period it was busy in; `report costs` counts it once, in "
              "the period it finished in, foreground runs included.")


def render_costs(report: dict[str, Any]) -> Group:
    currency = report["currency"]
    table = Table(title="Cost by mode", header_style="bold", title_justify="left")
    for column in ("mode", "runs", "worker-h", "CPU-h", "energy Wh", "cost", "per run",
                   "off-peak runs"):
        table.add_column(column, justify="left" if column == "mode" else "right")
    rows = list(report["by_mode"].items())
    costs = [row["cost"] for _, row in rows]
    cost_cells, total_cell = money_column(costs, currency, report["total_cost"])
    per_run, _ = money_column([row["cost_per_run"] for _, row in rows], currency)
    for (mode, row), cost, each in zip(rows, cost_cells, per_run, strict=True):
        table.add_row(mode, str(row["runs"]), f"{row['worker_hours']:.4f}",
                      f"{row['cpu_hours']:.4f}", f"{row['energy_wh']:.2f}", cost, each,
                      str(row["off_peak_runs"]))
    table.add_section()
    table.add_row("total", str(report["total_runs"]), f"{report['worker_hours']:.4f}",
                  f"{report['cpu_hours']:.4f}", f"{report['energy_wh']:.2f}",
                  total_cell or "", "", "", style="bold")
    parts: list[Table | Text] = [table]
    if "groups" in report:
        parts.append(_group_table(report))
    parts.append(_summary(report, _total_note(costs, report["total_cost"], total_cell)))
    return Group(*parts)


def _total_note(costs: list[float], total: float, total_cell: str | None) -> str:
    """Say so when the rows as shown do not add up to the total as shown."""
    decimals = len(total_cell.rpartition(".")[2]) if total_cell else 0
    if adds_up(costs, total, decimals):
        return ""
    return "The total is the sum of the exact costs; the rows, rounded, differ in the last digit.\n"


def _summary(report: dict[str, Any], note: str) -> Text:
    currency = report["currency"]
    summary = Text()
    summary.append("Savings against all-real-time at peak price: ", style="bold")
    summary.append(f"{money(report['savings'], currency)} ({report['savings_pct']:.1f}%)",
                   style="bold green" if report["savings"] > 0 else "bold")
    summary.append(f"  — baseline {money(report['baseline_cost'], currency)}, actual "
                   f"{money(report['total_cost'], currency)}\n")
    if report.get("baseline_carbon_g"):
        from easyflow_cli.cli.receipt import grams

        summary.append(f"Carbon (runs a forecast covered): {grams(report['carbon_g'])} CO2,"
                       f" {grams(report['baseline_carbon_g'])} had they run at once\n")
    source = {"estimate": f"estimated from CPU time at {report['watts_per_core']} W per busy core",
              "rapl": "measured with RAPL package counters",
              "mixed": "partly RAPL-measured, partly estimated from CPU time"}
    summary.append(note + f"Energy {source[report['energy_source']]}.", style="dim")
    return summary


def _group_table(report: dict[str, Any]) -> Table:
    currency = report["currency"]
    table = Table(title=f"Cost by {report['by']}", header_style="bold", title_justify="left")
    for column in (report["by"], "runs", "worker-h", "cost", "per run", "savings"):
        table.add_column(column, justify="left" if column == report["by"] else "right")
    groups = report["groups"]
    costs, _ = money_column([g["cost"] for g in groups], currency)
    per_run, _ = money_column([g["cost_per_run"] for g in groups], currency)
    savings, _ = money_column([g["savings"] for g in groups], currency)
    for row, *cells in zip(groups, costs, per_run, savings, strict=True):
        table.add_row(row["key"], str(row["runs"]), f"{row['worker_hours']:.4f}", *cells)
    return table


def render_latency(report: dict[str, Any]) -> Table | Group:
    table = Table(title="Latency by mode (seconds)", header_style="bold", title_justify="left")
    for column in ("mode", "runs", "wait p50", "wait p95", "wait p99", "run p50", "run p95",
                   "run p99", "deadlines met", "missed"):
        table.add_column(column, justify="left" if column == "mode" else "right")
    for mode, row in report["by_mode"].items():
        waits, runs = row["queue_wait_s"], row["duration_s"]
        table.add_row(mode, str(row["runs"]), *(_secs(waits[p]) for p in ("p50", "p95", "p99")),
                      *(_secs(runs[p]) for p in ("p50", "p95", "p99")),
                      str(row["deadlines_met"]), str(row["deadlines_missed"]))
    if "attainment" not in report:
        return table
    return Group(table, *render_attainment(report["attainment"]))


def render_attainment(attainment: dict[str, Any]) -> list[Table]:
    """Each mode's objective and how often its runs kept it; the pairs that kept it least."""
    table = Table(title="User satisfaction: runs that kept their mode's objective",
                  header_style="bold", title_justify="left")
    for column in ("mode", "objective", "runs", "met", "missed", "attainment"):
        table.add_column(column, justify="left" if column in ("mode", "objective") else "right")
    for mode, kept in attainment["by_mode"].items():
        table.add_row(mode, _objective(mode, attainment["objectives"][mode]), str(kept["runs"]),
                      str(kept["met"]), str(kept["missed"]), _pct(kept["attainment_pct"]))
    tables = [table, _kept_table("By workflow", [
        {"workflow": name, **kept} for name, kept in attainment["by_workflow"].items()])]
    if attainment["worst"]:
        tables.append(_kept_table("Kept it least", attainment["worst"]))
    return tables


def _kept_table(title: str, rows: list[dict[str, Any]]) -> Table:
    """Runs, misses and attainment of workflows (and their modes, where rows name them)."""
    keys = ["workflow", "mode"] if rows and "mode" in rows[0] else ["workflow"]
    table = Table(title=title, header_style="bold", title_justify="left")
    for column in (*keys, "runs", "missed", "attainment"):
        table.add_column(column, justify="left" if column in keys else "right")
    for row in rows:
        table.add_row(*(row[key] for key in keys), str(row["runs"]), str(row["missed"]),
                      _pct(row["attainment_pct"]))
    return table


def _objective(mode: str, objective: dict[str, Any]) -> str:
    if "max_delay_s" in objective:
        return f"by its deadline, else start within {format_duration(objective['max_delay_s'])}"
    within = objective["start_within_s"]
    return "-" if within is None else f"start within {format_duration(within)}"


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}%"


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
    parts = [table, depth] + ([_nodes(report["nodes"])] if report["nodes"] else [])
    return Group(*parts, Text(POOLS_NOTE.format(
        foreground=plural(report["foreground_runs"], "run")), style="dim"))


def _nodes(nodes: list[dict[str, Any]]) -> Table:
    """Each machine's runs that held a worker, by pool (pruned history keeps no host)."""
    table = Table(title="Nodes", header_style="bold", title_justify="left")
    modes = list(nodes[0]["pools"])
    for column in ("host", "runs", "busy h", *modes):
        table.add_column(column, justify="left" if column == "host" else "right")
    for node in nodes:
        table.add_row(node["host"] or "(not recorded)", str(node["runs"]),
                      f"{node['busy_hours']:.4f}",
                      *(str(node["pools"][mode]["runs"]) for mode in modes))
    return table


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


def render_advice(report: dict[str, Any]) -> Group:
    """One row per workflow: its verdict and why, what changing it saves a month, the change."""
    table = Table(title="Advice", header_style="bold", title_justify="left")
    for column in ("workflow", "verdict", "evidence", "saves / month", "risk", "change"):
        table.add_column(column, justify="right" if column == "saves / month" else "left")
    lines = report["workflows"]
    amounts, _ = money_column([line["money_per_month"] for line in lines], report["currency"])
    for line, amount in zip(lines, amounts, strict=True):
        table.add_row(Text(line["workflow"]), line["verdict"], Text(_evidence(line)),
                      _saving(line, amount), line["risk"] or "-", Text(_change(line["change"])))
    prices = report["tariff_source"] or "the pools' prices (no tariff loaded)"
    carbon = report["carbon_source"] or "no carbon forecast loaded: carbon not projected"
    return Group(table, Text(f"money: {prices}; carbon: {carbon}", style="dim"))


def _evidence(line: dict[str, Any]) -> str:
    evidence = line["evidence"]
    return (f"{plural(evidence['runs'], 'run')} in {evidence['days']:.0f} days: "
            f"{line['reason']}")


def _saving(line: dict[str, Any], amount: str) -> str:
    if line["carbon_g_per_month"] is None:
        return amount
    return f"{amount}, {line['carbon_g_per_month']:.1f} g CO2"


def _change(change: dict[str, Any] | None) -> str:
    if change is None:
        return "-"
    table = f"{change['table']} " if change["table"] else ""
    return f"{change['file']}: {table}{change['toml']}"
