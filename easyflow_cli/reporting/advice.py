"""`report advise`: the evidence of each workflow's runs over a period, read in one pass of SQL,
judged by `core/advice.py`, as the one dict that the table, `--json` and `--csv` are drawn from.
"""

from __future__ import annotations

from dataclasses import fields, replace
from datetime import datetime, timedelta
from typing import Any

from easyflow_cli.core.advice import Advice, Evidence, ModeEvidence, Setting, advise
from easyflow_cli.core.config import Config, Optimise
from easyflow_cli.core.costs import Prices, exact, run_cost
from easyflow_cli.core.forecast import Forecast
from easyflow_cli.core.learned import learn
from easyflow_cli.core.model import Mode
from easyflow_cli.core.offpeak import OffPeakWindow
from easyflow_cli.core.shifting import StartChooser, lowest_start, shift_means
from easyflow_cli.core.timeutil import from_iso, to_iso
from easyflow_cli.reporting.accounting import Period
from easyflow_cli.storage.store import Store

# Per workflow, mode and tariff: what the verdicts rest on (the objectives' thresholds are the
# parameters before the period's: eco's max_delay, real-time's and balanced's start_within).
# A manual run queued before runs recorded `followed` counts as waited for: "nobody waiting" is
# measured, never assumed.
EVIDENCE_SQL = """
SELECT workflow, mode, off_peak, count(*) AS runs, min(finished_at) AS first,
  max(finished_at) AS last,
  total(followed = 1 OR (followed IS NULL AND trigger = 'manual')) AS waited,
  total(mode_reason = 'explicit' AND trigger IN ('schedule', 'catch-up')) AS pinned_by_schedule,
  total(mode_reason = 'explicit' AND trigger = 'manual') AS pinned_by_hand,
  total(duration_s) AS worker_s,
  total(coalesce(cpu_user_s, 0) + coalesce(cpu_system_s, 0)) AS cpu_s,
  total(energy_j) AS energy_j, count(energy_j) AS measured, count(deadline) AS deadlines,
  min((julianday(deadline) - julianday(enqueued_at)) * 86400.0) AS min_slack_s,
  count(CASE WHEN mode = 'eco' THEN coalesce(deadline_met, queue_wait_s) ELSE queue_wait_s END)
    AS judged,
  total(CASE WHEN mode = 'eco' THEN coalesce(deadline_met = 0, queue_wait_s > ?)
             WHEN mode = 'real-time' THEN queue_wait_s > ?
             ELSE queue_wait_s > ? END) AS missed
FROM runs WHERE {where} GROUP BY workflow, mode, off_peak
"""
NO_OBJECTIVE = 1e18  # a pool without `start_within`: no start is late
EMPTY = ModeEvidence()


def advice_report(store: Store, config: Config, period: Period, now: datetime,
                  carbon: Forecast | None = None) -> dict[str, Any]:
    """Every workflow with runs in the period (or `period.workflow`), judged, by name."""
    setting = advice_setting(config, carbon, now)
    evidence = read_evidence(store, config, period, now)
    files = {spec.name: spec.source_file for spec in store.all_workflows()}
    advice = []
    for name in sorted(evidence):
        learned = learn(store.queue.recent_successes(name))
        if learned.duration is not None:
            evidence[name].p50_s, evidence[name].p90_s = (learned.duration.p50,
                                                          learned.duration.p90)
        judged_by = setting
        if carbon is not None:
            judged_by = replace(setting, carbon_shift_g_per_kwh=carbon_shift(
                config, carbon, evidence[name].p90_s or config.costs.default_duration))
        advice.append(advise(evidence[name], judged_by, files.get(name)))
    return {
        "period": {"since": to_iso(period.since), "until": to_iso(period.until or now),
                   "workflow": period.workflow},
        "currency": config.costs.currency,
        "carbon_source": setting.carbon_source,
        "workflows": [advice_record(a, setting) for a in advice],
        "money_per_month": exact(sum(a.money_per_month or 0.0 for a in advice
                                     if a.money_per_month and a.money_per_month > 0)),
    }


def read_evidence(store: Store, config: Config, period: Period,
                  now: datetime) -> dict[str, Evidence]:
    """Each workflow's runs in the period, by mode, priced as they ran."""
    where, args = period.where()
    rows = [dict(row) for row in store.conn.execute(EVIDENCE_SQL.format(where=where),
                                                    [*_objectives(config), *args])]
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


def advice_setting(config: Config, carbon: Forecast | None, now: datetime) -> Setting:
    """What advice is priced against: the pools' prices, how long eco waits, and what moving
    a run from submission to its eco start changes in the carbon series, if one is loaded."""
    window = _eco_window(config)
    eco = config.pool(Mode.ECO)
    return Setting(
        prices=Prices.from_config(config), watts_per_core=config.costs.watts_per_core,
        eco_wait_s=eco.max_delay if window is None else _longest_wait(window, now),
        eco_off_peak=window is not None and config.tariff_window is not None,
        workers={mode: config.pool(mode).workers for mode in Mode},
        config_file=config.source if config.source.endswith(".toml") else "easyflow.toml",
        carbon_source=None if carbon is None else carbon.source)


def _eco_window(config: Config) -> OffPeakWindow | None:
    """The fixed window eco runs wait for, where that is what eco optimises."""
    eco = config.pool(Mode.ECO)
    return eco.off_peak if eco.optimise is Optimise.OFF_PEAK else None


def carbon_shift(config: Config, carbon: Forecast, duration_s: float) -> float | None:
    """gCO2/kWh saved by starting a run of this length where eco would, not at once."""
    chooser = _chooser(carbon, _eco_window(config), config.pool(Mode.ECO).max_delay,
                       duration_s)
    shift = shift_means(carbon, duration_s, chooser)
    return None if shift is None else shift.at_once - shift.planned


def _chooser(series: Forecast, window: OffPeakWindow | None, within_s: float,
             duration_s: float) -> StartChooser:
    """Where eco puts a run arriving at a moment: its fixed window, else the lowest start."""
    if window is not None:
        return window.next_start
    return lambda arrival: lowest_start(series, arrival, within_s, duration_s)


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
