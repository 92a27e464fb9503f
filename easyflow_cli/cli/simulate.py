"""`easyflow simulate`: a period's runs replayed under a policy, against the price and carbon
series, beside what happened and the best possible."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from easyflow_cli.cli.common import open_store
from easyflow_cli.cli.output import CSV_OPTION, JSON_OPTION, busy, console, print_csv, print_json
from easyflow_cli.core.errors import BadInput

COLUMNS = (("actual", "as it happened"), ("projected", "projected"),
           ("best_possible", "best possible"))
ROWS = (("cost", "cost"), ("carbon_g", "carbon (g CO2)"), ("deadline_misses", "deadline misses"),
        ("late_starts", "eco runs started after max_delay"), ("eco_runs", "eco runs"),
        ("wait_p50_s", "wait p50"), ("wait_p90_s", "wait p90"), ("wait_max_s", "wait max"))
POLICIES = ("current", "real-time", "advised")


def simulate(
    since: str = typer.Option("30d", "--since", help="A duration back from now or a date/time."),
    policy: str = typer.Option("current", "--policy",
                               help="current, real-time or advised: how runs are placed."),
    tariff: Path | None = typer.Option(None, "--tariff", help="A price series file (CSV)."),
    carbon: Path | None = typer.Option(None, "--carbon", help="A carbon series file (CSV)."),
    as_json: bool = JSON_OPTION, as_csv: bool = CSV_OPTION,
) -> None:
    """Replay the period's runs under a policy: projected cost, carbon, deadline misses and
    waits, beside what happened and the best possible."""
    from easyflow_cli.cli.report import parse_moment
    from easyflow_cli.core.config import load_config
    from easyflow_cli.core.timeutil import utcnow
    from easyflow_cli.reporting.simulate import Policy, simulate_period

    if policy not in POLICIES:
        raise BadInput(f"--policy: must be one of {', '.join(POLICIES)}, got {policy!r}")
    now = utcnow()
    start = parse_moment(since, now, "--since") or now
    if start >= now:
        raise BadInput("--since must be in the past")
    config = load_config()
    with open_store() as store, busy("replaying runs…"):
        report = simulate_period(store, config, Policy(policy), (start, now), tariff=tariff,
                                 carbon=carbon)
    if as_json:
        print_json(report)
    elif as_csv:
        print_csv([{"column": key, **(report[key] or {})} for key, _ in COLUMNS],
                  ["column", *(key for key, _ in ROWS)])
    else:
        _render(report)


def _render(report: dict[str, Any]) -> None:
    from rich.table import Table

    title = (f"{report['runs']} runs replayed, policy {report['policy']}, "
             f"eco planned by {report['optimise']}")
    table = Table(title=title, header_style="bold")
    table.add_column("")
    for _, label in COLUMNS:
        table.add_column(label, justify="right")
    for key, label in ROWS:
        cells = [_cell(key, (report[column] or {}).get(key), report["currency"])
                 for column, _ in COLUMNS]
        table.add_row(label, *cells)
    console.print(table)
    share = report.get("planner_share_of_best")
    if share and share["share"] is not None:
        console.print(f"The planner reaches {share['share']:.0%} of the best possible saving "
                      f"over starting every run at once ({report['optimise']}).")


def _cell(key: str, value: float | None, currency: str) -> str:
    from easyflow_cli.cli.money import money
    from easyflow_cli.core.durations import format_duration

    if value is None:
        return "-"
    if key == "cost":
        return money(value, currency)
    if key.startswith("wait_"):
        return format_duration(round(value))
    return f"{value:,.6g}"
