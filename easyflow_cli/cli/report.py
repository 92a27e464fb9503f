"""`easyflow report costs|latency|pools|advise`: cost and savings, waits, how busy the pools
were, and which workflows are over- or under-served by their mode."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from easyflow_cli.cli.common import check_workflow, open_store
from easyflow_cli.cli.group import EasyflowGroup
from easyflow_cli.cli.output import (
    CSV_OPTION,
    JSON_OPTION,
    busy,
    console,
    err_console,
    print_csv,
    print_json,
)
from easyflow_cli.core.durations import looks_like_duration, parse_duration
from easyflow_cli.core.errors import BadInput, shown
from easyflow_cli.core.timeutil import parse_time, to_iso, utcnow

if TYPE_CHECKING:
    from rich.console import RenderableType

    from easyflow_cli.reporting.accounting import Period

app = typer.Typer(cls=EasyflowGroup, no_args_is_help=True, rich_markup_mode=None,
                  help="Reports: costs and savings, latency, pool use, advice.")

SINCE = typer.Option(None, "--since", help="A duration back from now (7d) or a date/time.")
UNTIL = typer.Option(None, "--until", help="A duration back from now or a date/time.")
WORKFLOW = typer.Option(None, "--workflow", "-w", help="Only this workflow's runs.")
SVG = typer.Option(None, "--svg", help="Also write the report as an SVG image to this file.")


def parse_moment(text: str | None, now: datetime, option: str) -> datetime | None:
    if text is None:
        return None
    if looks_like_duration(text):
        try:
            return now - timedelta(seconds=parse_duration(text))
        except ValueError as exc:
            raise BadInput(f"{option}: {exc}") from None
    try:
        return parse_time(text)
    except ValueError:
        raise BadInput(f"{option}: {shown(text)} is neither a duration like '7d' nor a date like "
                       "2026-11-01") from None


def _period(since: str | None, until: str | None, workflow: str | None) -> Period:
    from easyflow_cli.reporting.accounting import Period

    now = utcnow()
    period = Period(parse_moment(since, now, "--since"), parse_moment(until, now, "--until"),
                    workflow)
    if period.since and period.until and period.since >= period.until:
        raise BadInput("--since must be earlier than --until")
    return period


def _period_json(period: Period) -> dict[str, Any]:
    return {"since": to_iso(period.since), "until": to_iso(period.until),
            "workflow": period.workflow}


def _show(renderable: RenderableType, svg: Path | None, title: str,
          period: dict[str, Any]) -> None:
    console.print(renderable)
    if svg is not None:
        from easyflow_cli.cli.svg import save_report_svg

        save_report_svg(renderable, svg, title, period)
        err_console.print(f"wrote {svg}")


@app.command("costs")
def costs(
    by: str = typer.Option("mode", "--by", help="Group by mode, workflow or (local) day."),
    since: str | None = SINCE, until: str | None = UNTIL, workflow: str | None = WORKFLOW,
    as_json: bool = JSON_OPTION, as_csv: bool = CSV_OPTION, svg: Path | None = SVG,
) -> None:
    """Runs, worker-hours, CPU-hours, energy and cost per mode; savings against all-real-time."""
    from easyflow_cli.core.config import load_config
    from easyflow_cli.core.costs import Prices
    from easyflow_cli.reporting.accounting import GROUP_KEYS, cost_sums
    from easyflow_cli.reporting.reports import cost_report

    if by not in GROUP_KEYS:
        raise BadInput(f"--by: must be one of {', '.join(GROUP_KEYS)}, got {by!r}")
    config = load_config()
    period = _period(since, until, workflow)
    with open_store() as store, busy("adding up runs…"):
        check_workflow(store, workflow)
        sums = cost_sums(store, period, by)
    report = cost_report(sums, Prices.from_config(config), config.costs.watts_per_core, by,
                         _period_json(period))
    if as_json:
        print_json(report)
    elif as_csv:
        groups = report["groups"] if by != "mode" else [
            {"key": m, **r} for m, r in report["by_mode"].items()]
        print_csv([{by: g["key"], **g} for g in groups],
                  [by, "runs", "worker_hours", "cpu_hours", "energy_wh", "cost", "cost_per_run",
                   "baseline_cost", "savings", "off_peak_runs"])
    else:
        from easyflow_cli.cli.report_render import render_costs

        _show(render_costs(report), svg, "easyflow report costs", report["period"])


@app.command("latency")
def latency(
    since: str | None = SINCE, until: str | None = UNTIL, workflow: str | None = WORKFLOW,
    as_json: bool = JSON_OPTION, as_csv: bool = CSV_OPTION, svg: Path | None = SVG,
) -> None:
    """p50/p95/p99 of queue wait and duration per mode; deadlines met and missed; how often
    each mode's objective was kept (user satisfaction), per mode and workflow."""
    from easyflow_cli.core.config import load_config
    from easyflow_cli.core.objectives import Objectives
    from easyflow_cli.reporting.accounting import latency_stats
    from easyflow_cli.reporting.attainment import attainment_report, kept_counts
    from easyflow_cli.reporting.reports import QUANTILES, latency_report

    objectives = Objectives.from_config(load_config())
    period = _period(since, until, workflow)
    with open_store() as store, busy("reading runs…"):
        check_workflow(store, workflow)
        attainment = attainment_report(kept_counts(store, period, objectives), objectives)
        report = latency_report(latency_stats(store, period, QUANTILES), _period_json(period),
                                attainment)
    if as_json:
        print_json(report)
    elif as_csv:
        rows = [{"mode": mode, "runs": r["runs"],
                 **{f"wait_{p}": r["queue_wait_s"][p] for p in ("p50", "p95", "p99")},
                 **{f"duration_{p}": r["duration_s"][p] for p in ("p50", "p95", "p99")},
                 "deadlines_met": r["deadlines_met"], "deadlines_missed": r["deadlines_missed"],
                 **_attainment_columns(report["attainment"]["by_mode"].get(mode))}
                for mode, r in report["by_mode"].items()]
        print_csv(rows, list(rows[0]))
    else:
        from easyflow_cli.cli.report_render import render_latency

        _show(render_latency(report), svg, "easyflow report latency", report["period"])


def _attainment_columns(kept: dict[str, Any] | None) -> dict[str, Any]:
    kept = kept or {"met": None, "missed": None, "attainment_pct": None}
    return {"objective_met": kept["met"], "objective_missed": kept["missed"],
            "attainment_pct": kept["attainment_pct"]}


@app.command("pools")
def pools(
    since: str | None = SINCE, until: str | None = UNTIL, workflow: str | None = WORKFLOW,
    buckets: int = typer.Option(24, "--buckets", min=1, max=500, help="Time slices to chart."),
    as_json: bool = JSON_OPTION, as_csv: bool = CSV_OPTION, svg: Path | None = SVG,
) -> None:
    """Utilization of each pool over the period and queue depth by mode, with sparklines."""
    from easyflow_cli.core.config import load_config
    from easyflow_cli.core.model import Mode
    from easyflow_cli.reporting.accounting import earliest_start, pool_use
    from easyflow_cli.reporting.reports import pools_report
    from easyflow_cli.reporting.timeline import Timeline

    config = load_config()
    period = _period(since, until, workflow)
    with open_store() as store, busy("reading runs…"):
        check_workflow(store, workflow)
        end = (period.until or utcnow()).timestamp()
        first = None if period.since else earliest_start(store, period)
        start = period.since.timestamp() if period.since else (
            first if first is not None else end - 3600)
        timeline = Timeline(start, end, buckets)
        report = pools_report(
            pool_use(store, period, timeline), {m.value: config.pool(m).workers for m in Mode},
            {m.value: n for m, n in store.queue.depths().items()}, timeline,
            _period_json(period))
    if as_json:
        print_json(report)
    elif as_csv:
        rows = [{"pool": m, **{k: v for k, v in r.items() if k != "utilization_series"}}
                for m, r in report["pools"].items()]
        # Runs with no daemon up held no pool worker; a row of their own, so that the runs
        # column adds up to what `report costs` counts.
        rows.append({"pool": "foreground", "runs": report["foreground_runs"]})
        print_csv(rows, ["pool", "workers", "runs", "busy_hours", "utilization_pct"])
    else:
        from easyflow_cli.cli.report_render import render_pools

        _show(render_pools(report), svg, "easyflow report pools", report["period"])


ADVICE_COLUMNS = ["workflow", "verdict", "runs", "days", "money_per_month",
                  "carbon_g_per_month", "risk", "file", "table", "toml", "reason"]


@app.command("advise")
def advise(
    since: str = typer.Option("30d", "--since",
                              help="A duration back from now (30d) or a date/time."),
    until: str | None = UNTIL, workflow: str | None = WORKFLOW,
    as_json: bool = JSON_OPTION, as_csv: bool = CSV_OPTION, svg: Path | None = SVG,
) -> None:
    """Which workflows are over-served (eco would do, nobody waits), under-served (their mode's
    objective missed) or fine: the evidence, the monthly saving, the risk, the TOML change."""
    from easyflow_cli.cli.loaded_series import loaded_carbon, loaded_tariff
    from easyflow_cli.core.config import load_config
    from easyflow_cli.reporting.advice import advice_report

    config = load_config()
    period = _period(since, until, workflow)
    with open_store() as store, busy("reading runs…"):
        check_workflow(store, workflow)
        report = advice_report(store, config, period, utcnow(), carbon=loaded_carbon(config),
                               tariff=loaded_tariff(config))
    if as_json:
        print_json(report)
    elif as_csv:
        print_csv([_advice_row(line) for line in report["workflows"]], ADVICE_COLUMNS)
    else:
        from easyflow_cli.cli.report_render import render_advice

        _show(render_advice(report), svg, "easyflow report advise", report["period"])


def _advice_row(line: dict[str, Any]) -> dict[str, Any]:
    change = line["change"] or {}
    return {**line, **line["evidence"], "file": change.get("file"),
            "table": change.get("table"), "toml": change.get("toml")}
