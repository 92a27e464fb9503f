"""`report advise`: the evidence of each workflow's runs over a period, read in one pass of SQL,
judged by `core/advice.py`, as the one dict that the table, `--json` and `--csv` are drawn from.
"""

from __future__ import annotations

from dataclasses import fields, replace
from datetime import datetime, timedelta
from typing import Any

from easyflow_cli.core.advice import (
    Advice,
    Evidence,
    ModeEvidence,
    Setting,
    TariffShift,
    advise,
)
from easyflow_cli.core.config import Config, Optimise
from easyflow_cli.core.costs import Prices, exact, run_cost
from easyflow_cli.core.forecast import Forecast
from easyflow_cli.core.learned import learn
from easyflow_cli.core.model import Mode
from easyflow_cli.core.offpeak import OffPeakWindow
from easyflow_cli.core.shifting import eco_start_chooser, shift_means
from easyflow_cli.core.timeutil import from_iso, to_iso
from easyflow_cli.reporting import summarized
from easyflow_cli.reporting.accounting import Period
from easyflow_cli.storage.dialect import ReportStore

# Per workflow, mode and tariff: what the verdicts rest on (the objectives' thresholds are the
# parameters before the period's: eco's max_delay, real-time's and balanced's start_within).
# A manual run queued before runs recorded `followed` counts as waited for: "nobody waiting" is
# measured, never assumed. (The store's dialect spells what `{d.…}` stands for.)
EVIDENCE_SQL = """
SELECT workflow, mode, off_peak, count(*) AS runs, min(finished_at) AS first,
  max(finished_at) AS last,
  total(followed = {d.true} OR (followed IS NULL AND trigger = 'manual')) AS waited,
  total(mode_reason = 'explicit' AND trigger IN ('schedule', 'catch-up')) AS pinned_by_schedule,
  total(mode_reason = 'explicit' AND trigger = 'manual') AS pinned_by_hand,
  total(duration_s) AS worker_s,
  total(coalesce(cpu_user_s, 0) + coalesce(cpu_system_s, 0)) AS cpu_s,
  total(energy_j) AS energy_j, count(energy_j) AS measured, count(deadline) AS deadlines,
  min({slack}) AS min_slack_s,
  count(CASE WHEN mode = 'eco' AND deadline_met IS NOT NULL THEN 1 ELSE queue_wait_s END)
    AS judged,
  total(CASE WHEN mode = 'eco' THEN coalesce(deadline_met = {d.false}, queue_wait_s > ?)
             WHEN mode = 'real-time' THEN queue_wait_s > ?
             ELSE queue_wait_s > ? END) AS missed
FROM {table} WHERE {where} GROUP BY workflow, mode, off_peak
"""
# The settled runs of a mode that missed its start objective (eco: those without a deadline),
# a range of the waits index. (Eco's missed deadlines over summarized hours are the
# summaries'.)
LATE_SQL = ("SELECT workflow, mode, off_peak, count(*) FROM runs INDEXED BY runs_waits"
            " WHERE duration_s IS NOT NULL AND mode = ? AND queue_wait_s > ?{eco} AND {where}"
            " GROUP BY workflow, mode, off_peak")
# How the rows of one (workflow, mode, tariff) add up; every other field is a sum.
EARLIEST, LATEST = ("first", "min_slack_s"), ("last",)
NO_OBJECTIVE = 1e18  # a pool without `start_within`: no start is late
EMPTY = ModeEvidence()


def advice_report(store: ReportStore, config: Config, period: Period, now: datetime, *,
                  carbon: Forecast | None = None,
                  tariff: Forecast | None = None) -> dict[str, Any]:
    """Every workflow with runs in the period (or `period.workflow`), judged, by name; money
    by `tariff` and carbon by `carbon` where they are loaded."""
    setting = advice_setting(config, now, carbon=carbon, tariff=tariff)
    evidence = read_evidence(store, config, period, now)
    files = {spec.name: spec.source_file for spec in store.all_workflows()}
    advice = []
    for name in sorted(evidence):
        learned = learn(store.queue.recent_successes(name))
        if learned.duration is not None:
            evidence[name].p50_s, evidence[name].p90_s = (learned.duration.p50,
                                                          learned.duration.p90)
        judged_by = with_series(setting, config, evidence[name], carbon=carbon, tariff=tariff)
        advice.append(advise(evidence[name], judged_by, files.get(name)))
    return {
        "period": {"since": to_iso(period.since), "until": to_iso(period.until or now),
                   "workflow": period.workflow},
        "currency": config.costs.currency,
        "carbon_source": setting.carbon_source,
        "tariff_source": None if tariff is None else tariff.source,
        "workflows": [advice_record(a, setting) for a in advice],
        "money_per_month": exact(sum(a.money_per_month or 0.0 for a in advice
                                     if a.money_per_month and a.money_per_month > 0)),
    }


def with_series(setting: Setting, config: Config, evidence: Evidence, *,
                carbon: Forecast | None, tariff: Forecast | None) -> Setting:
    """The setting for one workflow: what eco's start does to the series over its p90."""
    if carbon is None and tariff is None:
        return setting
    duration = evidence.p90_s or config.costs.default_duration
    choose = eco_start_chooser(config, duration, tariff=tariff, carbon=carbon)
    grams = None if carbon is None else shift_means(carbon, duration, choose)
    price = None if tariff is None else shift_means(tariff, duration, choose)
    return replace(
        setting, carbon_shift_g_per_kwh=None if grams is None else grams.at_once - grams.planned,
        tariff=None if price is None or tariff is None else TariffShift(
            tariff.unit, price.at_once, price.planned))


def read_evidence(store: ReportStore, config: Config, period: Period,
                  now: datetime) -> dict[str, Evidence]:
    """Each workflow's runs in the period, by mode, priced as they ran."""
    rows = _evidence_rows(store, config, period)
    since = period.since or min((from_iso(r["first"]) for r in rows), default=now)
    days = ((period.until or now) - since).total_seconds() / 86400
    prices = Prices.from_config(config)
    found: dict[str, Evidence] = {}
    times: dict[str, list[str]] = {}
    for row in rows:
        item = found.setdefault(row["workflow"], Evidence(row["workflow"], days, 0.0, {}))
        mode = Mode(row["mode"])
        item.by_mode[mode] = item.mode(mode).plus(_mode_evidence(row, prices))
        times.setdefault(row["workflow"], []).extend([row["first"], row["last"]])
    for name, stamps in times.items():
        span = from_iso(max(stamps)) - from_iso(min(stamps))
        found[name].span_days = span.total_seconds() / 86400
    return found


def _evidence_rows(store: ReportStore, config: Config, period: Period) -> list[dict[str, Any]]:
    """Per (workflow, mode, tariff): the summarized hours' evidence and their misses, and the
    rest of the period's runs read in detail."""
    cover = summarized.coverage(store, period.since, period.until)
    rows = summarized.evidence_rows(store, cover, period.workflow)
    if rows:
        _add_misses(store, config, cover, period.workflow, rows)
    for table, where, args in period.detail(cover):
        sql = EVIDENCE_SQL.format(table=table, where=where, d=store.dialect,
                                  slack=store.dialect.seconds_between("enqueued_at", "deadline"))
        rows += [dict(row) for row in store.read(sql, [*_objectives(config), *args])]
    return _merged(rows)


def _add_misses(store: ReportStore, config: Config, cover: summarized.Coverage,
                workflow: str | None, rows: list[dict[str, Any]]) -> None:
    """The covered hours' runs that started later than their objective, counted into their
    rows."""
    where, args = cover.hours_where("finished_at")
    if workflow:
        where, args = f"{where} AND workflow = ?", [*args, workflow]
    eco, real_time, balanced = _objectives(config)
    queries: list[tuple[str, list[Any]]] = []
    for mode, limit in ((Mode.ECO, eco), (Mode.REAL_TIME, real_time), (Mode.BALANCED, balanced)):
        if limit < NO_OBJECTIVE:
            late = LATE_SQL.format(eco=" AND deadline_met IS NULL" if mode is Mode.ECO else "",
                                   where=where)
            queries.append((late, [mode.value, limit, *args]))
    by_key = {(row["workflow"], row["mode"], row["off_peak"]): row for row in rows}
    for sql, bound in queries:
        for name, mode_value, off_peak, count in store.read(sql, bound):
            row = by_key.get((name, mode_value, off_peak))
            if row is not None:  # else a run changed behind the summaries' back: no evidence
                row["missed"] += count


def _merged(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Rows of one (workflow, mode, tariff) added up: counts and sums added, the first times
    and the least slack the least, the last time the latest."""
    merged: dict[tuple, dict[str, Any]] = {}
    for row in rows:
        key = (row["workflow"], row["mode"], row["off_peak"])
        into = merged.get(key)
        if into is None:
            merged[key] = dict(row)
            continue
        for field, value in row.items():
            if field in ("workflow", "mode", "off_peak") or value is None:
                continue
            if into[field] is None:
                into[field] = value
            elif field in EARLIEST or field in LATEST:
                into[field] = (min if field in EARLIEST else max)(into[field], value)
            else:
                into[field] += value
    return list(merged.values())


def _objectives(config: Config) -> list[float]:
    """The thresholds EVIDENCE_SQL judges starts by, in its order."""
    def within(mode: Mode) -> float:
        value = config.pool(mode).start_within
        return NO_OBJECTIVE if value is None else value

    return [config.pool(Mode.ECO).max_delay, within(Mode.REAL_TIME), within(Mode.BALANCED)]


def _mode_evidence(row: dict[str, Any], prices: Prices) -> ModeEvidence:
    """One tariff's row of a mode, priced as it ran (SQL's total() sums counts as floats:
    each field is given back its own type)."""
    counted = {f.name: type(getattr(EMPTY, f.name))(row[f.name]) for f in fields(ModeEvidence)
               if f.name not in ("cost", "min_slack_s")}
    cost = run_cost(prices, row["mode"], bool(row["off_peak"]), row["worker_s"], row["cpu_s"])
    return ModeEvidence(**counted, cost=cost, min_slack_s=row["min_slack_s"])


def advice_setting(config: Config, now: datetime, *, carbon: Forecast | None,
                   tariff: Forecast | None) -> Setting:
    """What advice is priced against: the pools' prices and how long eco waits (the series'
    part is added per workflow, by `with_series`)."""
    eco = config.pool(Mode.ECO)
    window = eco.off_peak if eco.optimise is Optimise.OFF_PEAK else None
    return Setting(
        prices=Prices.from_config(config), watts_per_core=config.costs.watts_per_core,
        eco_wait_s=eco.max_delay if window is None else _longest_wait(window, now),
        eco_off_peak=window is not None and config.tariff_window is not None,
        workers={mode: config.pool(mode).workers for mode in Mode},
        config_file=config.source if config.source.endswith(".toml") else "easyflow.toml",
        carbon_source=None if carbon is None else carbon.source)


def _longest_wait(window: OffPeakWindow, now: datetime) -> float:
    """The longest an eco run waits for the window: from just after it closes to it opening."""
    closes = window.next_start(now)
    while window.contains(closes):
        closes += timedelta(minutes=1)
    return (window.next_start(closes) - closes).total_seconds()


def advice_record(advice: Advice, setting: Setting) -> dict[str, Any]:
    """One workflow's line of the report, as `--json` prints it."""
    evidence = advice.evidence
    return {
        "workflow": advice.workflow, "verdict": advice.verdict.value, "reason": advice.reason,
        "evidence": {
            "runs": evidence.runs, "days": round(evidence.days, 2),
            "span_days": round(evidence.span_days, 2),
            "p50_s": evidence.p50_s, "p90_s": evidence.p90_s,
            "by_mode": {mode.value: _mode_record(past) for mode, past in
                        sorted(evidence.by_mode.items())},
        },
        "money_per_month": _amount(advice.money_per_month),
        "carbon_g_per_month": _amount(advice.carbon_g_per_month),
        "carbon": setting.carbon_source or "no forecast loaded",
        "risk": None if advice.risk is None else advice.risk.value,
        "change": None if advice.change is None else {
            "file": advice.change.file, "table": advice.change.table,
            "toml": advice.change.toml},
        "notes": advice.notes,
    }


def _mode_record(past: ModeEvidence) -> dict[str, Any]:
    return {"runs": past.runs, "waited": past.waited, "cost": exact(past.cost),
            "deadlines": past.deadlines, "min_slack_s": past.min_slack_s,
            "objective_met": past.judged - past.missed, "objective_judged": past.judged}


def _amount(value: float | None) -> float | None:
    return None if value is None else exact(value)
