"""`report advise` on fixture histories whose answers are known: a workflow clearly
over-served, one under-served, one fine, one with too little history; each verdict, TOML change
and projected monthly saving checked against figures worked out by hand from the default prices
(real-time $0.10, balanced $0.08, eco $0.05 per worker-hour at peak; eco $0.02 off-peak)."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from easyflow_cli.core.config import Optimise, load_config
from easyflow_cli.core.forecast import Forecast, Interval, Unit
from easyflow_cli.core.model import Mode
from easyflow_cli.core.timeutil import to_iso
from easyflow_cli.reporting.accounting import Period
from easyflow_cli.reporting.advice import advice_report
from easyflow_cli.storage import summaries
from easyflow_cli.storage.sqlite_queue import insert_runs

NOW = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
PERIOD = Period(NOW - timedelta(days=30), None)
COLUMNS = ("workflow", "trigger", "mode", "mode_reason", "cost_priority", "priority_rank",
           "state", "enqueued_at", "started_at", "finished_at", "duration_s", "cpu_user_s",
           "cpu_system_s", "energy_j", "queue_wait_s", "off_peak", "deadline", "deadline_met",
           "followed", "pool")


def history(store, workflow: str, *, runs: int, days: float, mode: str, trigger: str = "manual",
            followed: bool | None = None, duration_s: float = 600.0, wait_s: float = 0.01,
            off_peak: bool = False, slack_s: float | None = None,
            missed: int = 0, energy_j: float | None = None, reason: str | None = None) -> None:
    """`runs` finished runs spread evenly over the last `days` (the newest half a day ago),
    each `duration_s` long; `slack_s`: each has a deadline that long after it was queued, and
    the first `missed` of them missed it."""
    rows = []
    for index in range(runs):
        ended = NOW - timedelta(days=0.5 + days * index / max(runs - 1, 1))
        started = ended - timedelta(seconds=duration_s)
        queued = started - timedelta(seconds=wait_s)
        deadline = None if slack_s is None else queued + timedelta(seconds=slack_s)
        met = None if deadline is None else index >= missed
        rows.append((workflow, trigger, mode,
                     reason or (trigger if trigger == "manual" else "schedule"),
                     "normal", 1, "succeeded", to_iso(queued), to_iso(started), to_iso(ended),
                     duration_s, duration_s / 2, 0.0, energy_j, wait_s, off_peak,
                     to_iso(deadline), met, followed, mode))
    insert_runs(store, COLUMNS, rows)


@pytest.fixture
def fixtures(store):
    # Run with --no-wait every day, real-time, no deadline: nobody waits for it.
    history(store, "export", runs=30, days=29, mode="real-time", followed=False)
    # Eco with a deadline it missed 6 times in 20.
    history(store, "billing", runs=20, days=19, mode="eco", trigger="schedule",
            duration_s=1800.0, off_peak=True, slack_s=7200.0, missed=6)
    # Real-time, followed on a terminal every time, started at once.
    history(store, "dashboard", runs=15, days=14, mode="real-time", followed=True)
    # Four runs in two days.
    history(store, "fresh", runs=4, days=2, mode="real-time", followed=False)
    return store


def verdicts(store, carbon=None) -> dict[str, dict]:
    report = advice_report(store, load_config(), PERIOD, NOW, carbon=carbon)
    return {line["workflow"]: line for line in report["workflows"]}


def test_a_workflow_nobody_waits_for_is_over_served(fixtures):
    export = verdicts(fixtures)["export"]
    assert export["verdict"] == "over-served"
    assert export["change"] == {"file": "its workflow file", "table": None,
                                "toml": 'execution_mode = "eco"'}
    # Per run: 10 minutes at $0.10/h as real-time, $0.02/h as off-peak eco; 30 runs a month.
    assert export["money_per_month"] == pytest.approx(30 * (0.10 - 0.02) / 6)
    assert export["risk"] == "low"  # no deadline to miss
    assert (export["carbon_g_per_month"], export["carbon"]) == (None, "no forecast loaded")
    assert export["evidence"]["by_mode"]["real-time"]["waited"] == 0


def test_eco_runs_that_miss_their_deadlines_are_under_served(fixtures):
    billing = verdicts(fixtures)["billing"]
    assert billing["verdict"] == "under-served"
    assert billing["reason"].startswith("6 of 20 eco runs missed")
    assert billing["change"]["toml"] == 'execution_mode = "balanced"'
    # Per run: 30 minutes at $0.08/h as balanced against $0.02/h as it ran; 20 a month.
    assert billing["money_per_month"] == pytest.approx(-20 * (0.08 - 0.02) / 2)


def test_a_workflow_someone_waits_for_that_keeps_its_promise_is_fine(fixtures):
    dashboard = verdicts(fixtures)["dashboard"]
    assert (dashboard["verdict"], dashboard["change"], dashboard["money_per_month"]) == (
        "fine", None, None)
    assert dashboard["reason"] == "15 of 15 real-time/balanced runs had someone waiting"


def test_too_little_history_says_so(fixtures):
    fresh = verdicts(fixtures)["fresh"]
    assert (fresh["verdict"], fresh["change"], fresh["money_per_month"]) == (
        "not enough history", None, None)
    assert fresh["reason"] == "4 runs over 2.0 days; needs 10 over 7"


def test_real_time_runs_that_start_late_ask_for_a_worker(store):
    history(store, "api", runs=12, days=10, mode="real-time", followed=True, wait_s=5.0)
    api = verdicts(store)["api"]
    assert api["verdict"] == "under-served"
    assert api["change"] == {"file": "easyflow.toml", "table": "[pools.real-time]",
                             "toml": "workers = 6"}
    assert api["money_per_month"] == 0.0


def test_a_mode_set_by_its_schedules_is_changed_there(store):
    history(store, "sync", runs=12, days=10, mode="balanced", trigger="schedule",
            reason="explicit")
    sync = verdicts(store)["sync"]
    assert (sync["verdict"], sync["change"]["table"], sync["change"]["toml"]) == (
        "over-served", "[[schedules]]", 'mode = "eco"')


def test_runs_given_their_mode_by_hand_are_told_to_drop_it(store):
    history(store, "push", runs=12, days=10, mode="real-time", followed=False,
            reason="explicit")
    push = verdicts(store)["push"]
    assert push["verdict"] == "over-served"
    assert push["notes"] == ["12 runs asked for their mode with --mode, which wins over the "
                             "file: submit them without it"]


def test_a_deadline_close_to_p90_plus_the_wait_keeps_it_fine(store):
    # Ten minutes of work whose deadline is two hours away: eco's window can be 16 h off.
    history(store, "report", runs=12, days=10, mode="balanced", trigger="schedule",
            slack_s=7200.0)
    report = verdicts(store)["report"]
    assert report["verdict"] == "fine"
    assert report["reason"] == "its deadlines leave too little room to wait for cheaper hours"


def test_a_carbon_forecast_projects_the_grams_eco_saves(fixtures):
    # Every hour of a day at 300 gCO2/kWh but the last at 100: any run arriving that day can
    # wait for it (max_delay 24h), so eco saves 300 - 100 on every arrival but the last hour's.
    day = datetime(2026, 12, 1, tzinfo=UTC)
    carbon = Forecast(Unit.G_CO2_PER_KWH, "carbon.csv", tuple(
        Interval(day + timedelta(hours=h), day + timedelta(hours=h + 1), 100.0 if h == 23
                 else 300.0) for h in range(24)))
    history(fixtures, "measured", runs=30, days=29, mode="real-time", trigger="manual",
            followed=False, energy_j=36_000.0)  # 0.01 kWh a run
    config = load_config()
    eco = replace(config.pool(Mode.ECO), optimise=Optimise.CARBON)
    config = replace(config, pools={**config.pools, Mode.ECO: eco})
    report = advice_report(fixtures, config, PERIOD, NOW, carbon=carbon)
    measured = {line["workflow"]: line for line in report["workflows"]}["measured"]
    saved_per_kwh = 200.0 * 23 / 24
    assert measured["carbon_g_per_month"] == pytest.approx(30 * 0.01 * saved_per_kwh)
    assert (measured["carbon"], report["carbon_source"]) == ("carbon.csv", "carbon.csv")


def test_a_tariff_prices_the_saving_where_eco_would_start(fixtures):
    # 30p/kWh but the last hour of the day, paid to use (-5p): eco (optimise = "cost") starts
    # every run that arrives that day there, and it saves 35p/kWh on all but the last hour's.
    day = datetime(2026, 12, 1, tzinfo=UTC)
    tariff = Forecast(Unit.PER_KWH, "agile.json", tuple(
        Interval(day + timedelta(hours=h), day + timedelta(hours=h + 1), -0.05 if h == 23
                 else 0.30) for h in range(24)))
    config = load_config()
    eco = replace(config.pool(Mode.ECO), optimise=Optimise.COST)
    config = replace(config, pools={**config.pools, Mode.ECO: eco})
    report = advice_report(fixtures, config, PERIOD, NOW, tariff=tariff)
    export = {line["workflow"]: line for line in report["workflows"]}["export"]
    # No energy measured: 5 CPU-minutes a run at 15 W per busy core, 30 runs a month.
    kwh = 300 * 15 / 3.6e6
    assert export["verdict"] == "over-served"
    assert export["money_per_month"] == pytest.approx(30 * kwh * 0.35 * 23 / 24)
    assert report["tariff_source"] == "agile.json"


@pytest.mark.parametrize("period", [PERIOD, Period(NOW - timedelta(days=9, minutes=17), None),
                                    Period(None, NOW - timedelta(days=3), "billing")])
def test_summarized_hours_give_the_same_advice(fixtures, period):
    history(fixtures, "api", runs=12, days=10, mode="real-time", followed=True, wait_s=5.0)
    history(fixtures, "sync", runs=12, days=10, mode="balanced", trigger="schedule",
            reason="explicit", wait_s=90.0)
    history(fixtures, "batch", runs=14, days=12, mode="eco", trigger="schedule",
            wait_s=30 * 3600.0, slack_s=None)
    config = load_config()
    before = advice_report(fixtures, config, period, NOW)
    with fixtures.write() as conn:
        summaries.summarize_all(conn, NOW)
    assert summaries.mark(fixtures.conn) is not None
    assert advice_report(fixtures, config, period, NOW) == before
