"""`simulate`'s replay: modes by policy, the eco planner with what it had learned by then, each
pool's workers serving ready runs in the queue's order, and the brute-force best possible."""

from datetime import UTC, datetime, timedelta

import pytest

from easyflow_cli.core.config import Optimise, load_config
from easyflow_cli.core.costs import Prices
from easyflow_cli.core.eco_plan import RunEstimate, Series, window_cost
from easyflow_cli.core.forecast import Forecast, Interval, Unit
from easyflow_cli.core.model import Mode, ModeReason, Trigger
from easyflow_cli.reporting.optimum import MinuteIntegral, best_starts
from easyflow_cli.reporting.replay import ReplayRun
from easyflow_cli.reporting.simulate import (
    LearnedSoFar,
    Policy,
    Pricing,
    mode_under,
    placed,
    served,
    simulate,
)
from tests import replay_fixture

T0 = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
HOUR = timedelta(hours=1)
CONFIG = load_config(None, {})


def run(number, workflow="w", *, at=T0, mode=Mode.ECO, trigger=Trigger.SCHEDULE, deadline=None,
        seconds=600.0, cpu=600.0):
    reason = ModeReason.SCHEDULE if trigger is Trigger.SCHEDULE else ModeReason.MANUAL
    return ReplayRun(number, workflow, trigger, mode, reason, deadline, at, at, seconds, cpu,
                     None, True)


def hourly(values, unit=Unit.PER_KWH):
    return Forecast(unit, "test", tuple(Interval(T0 + i * HOUR, T0 + (i + 1) * HOUR, v)
                                        for i, v in enumerate(values)))


def pricing(tariff=None, carbon=None):
    return Pricing(Prices.from_config(CONFIG), None, 15.0, tariff, carbon)


# A 10-minute run due by 17:00: with the planner's hour of margin it can use 14:00 at best;
# knowing its true duration, the best possible is 16:00.
PRICES = [0.30, 0.20, 0.05, 0.25, 0.01, 0.40]


def test_an_eco_run_goes_to_the_cheapest_hour_it_can_keep_its_deadline_with_margin():
    prices = hourly(PRICES)
    series = Series(Optimise.COST, prices)
    runs = [run(1, deadline=T0 + 5 * HOUR)]
    [projected] = placed(runs, Policy.CURRENT, series, CONFIG)
    assert projected.start == T0 + 2 * HOUR
    [best] = best_starts([(runs[0], Mode.ECO)], series, timedelta(hours=24))
    assert best.start == T0 + 4 * HOUR
    period = (T0, T0 + 6 * HOUR)
    report = simulate(runs, Policy.CURRENT, series, pricing(prices), CONFIG, period)
    assert report["planner_share_of_best"]["share"] == pytest.approx((0.30 - 0.05) / 0.29,
                                                                     abs=1e-4)
    assert report["projected"]["deadline_misses"] == 0


def test_real_time_runs_everything_at_its_arrival():
    runs = [run(1), run(2, trigger=Trigger.MANUAL, mode=Mode.BALANCED, at=T0 + HOUR)]
    placements = placed(runs, Policy.REAL_TIME, Series(Optimise.COST, hourly(PRICES)), CONFIG)
    assert {(p.run.id, p.mode, p.start) for p in placements} == {
        (1, Mode.REAL_TIME, T0), (2, Mode.REAL_TIME, T0 + HOUR)}


def test_advised_moves_the_runs_nobody_waits_for_to_eco():
    scheduled = run(1, mode=Mode.BALANCED)
    backfill = run(2, mode=Mode.BALANCED, trigger=Trigger.MANUAL)
    awaited = run(3, mode=Mode.REAL_TIME, trigger=Trigger.MANUAL)
    due = run(4, mode=Mode.BALANCED, trigger=Trigger.MANUAL, deadline=T0 + HOUR)
    assert [mode_under(Policy.ADVISED, r) for r in (scheduled, backfill, awaited, due)] == [
        Mode.ECO, Mode.ECO, Mode.REAL_TIME, Mode.BALANCED]
    assert mode_under(Policy.CURRENT, scheduled) is Mode.BALANCED


def test_a_pool_serves_the_earliest_deadline_first_when_a_worker_frees():
    first = run(1, seconds=100)
    relaxed = run(2, at=T0 + timedelta(seconds=10), seconds=100)
    urgent = run(3, at=T0 + timedelta(seconds=20), deadline=T0 + HOUR, seconds=100)
    starts = {r.id: s for s, r in served([(r.arrived.timestamp(), r)
                                          for r in (first, relaxed, urgent)], workers=1)}
    base = T0.timestamp()
    assert (starts[1] - base, starts[3] - base, starts[2] - base) == (0, 100, 200)


def test_a_run_is_planned_with_only_the_runs_finished_before_it_arrived():
    history = LearnedSoFar()
    history.add(run(1, seconds=3600))
    history.add(run(2, at=T0 + timedelta(minutes=5), seconds=60))
    assert [s.duration_s for s in history.before("w", T0 + timedelta(minutes=10))] == [60]
    assert [s.duration_s for s in history.before("w", T0 + 2 * HOUR)] == [3600, 60]


def test_misses_and_late_starts_are_counted():
    prices = hourly(PRICES)
    runs = [run(1, deadline=T0 + timedelta(minutes=5), seconds=600)]
    report = simulate(runs, Policy.CURRENT, None, pricing(prices), CONFIG, (T0, T0 + HOUR))
    assert report["actual"]["deadline_misses"] == 1
    assert report["best_possible"] is None  # nothing to plan by


def test_the_minute_integral_agrees_with_the_series_on_any_window():
    prices = hourly([0.3, -0.02, 0.11, 0.07, 0.5])
    series = Series(Optimise.COST, prices)
    integral = MinuteIntegral(prices)
    estimate = RunEstimate(timedelta(seconds=4321), 3600.0)  # energy: cost = integral / s
    for minute in range(0, 120, 7):
        start = T0 + timedelta(minutes=minute, seconds=13)
        expected = window_cost(series, start, estimate) / estimate.energy_kwh * 4321
        assert integral.over(start.timestamp(), 4321) == pytest.approx(expected)


def test_on_the_30_day_fixture_the_planner_nears_the_best_and_misses_no_deadline():
    runs = replay_fixture.workload()
    period = (replay_fixture.START, replay_fixture.START + timedelta(days=replay_fixture.DAYS))
    carbon = replay_fixture.uk_carbon_like()
    series = Series(Optimise.CARBON, carbon)
    report = simulate(runs, Policy.CURRENT, series, pricing(carbon=carbon), CONFIG, period)
    assert report["runs"] >= 1000
    assert report["projected"]["deadline_misses"] == 0
    assert report["projected"]["late_starts"] == 0
    assert report["planner_share_of_best"]["share"] > 0.8
    best = report["best_possible"]["carbon_g"]
    assert best <= report["projected"]["carbon_g"] < report["actual"]["carbon_g"]


def test_a_second_idle_worker_takes_a_run_when_it_is_ready_not_before():
    runs = [run(n, at=T0 + timedelta(seconds=s)) for n, s in ((1, 0), (2, 0), (3, 0))]
    starts = sorted(s - T0.timestamp() for s, _ in served([(r.arrived.timestamp(), r)
                                                           for r in runs], workers=2))
    assert starts == [0, 0, 600]
