"""The eco planner (pure): the cheapest or cleanest window of a forecast that keeps the run's
deadline or max_delay, the off-peak window where the forecast runs out, and the reason."""

from datetime import UTC, datetime, timedelta

import pytest

from easyflow_cli.core.config import Optimise
from easyflow_cli.core.eco_plan import (
    RunEstimate,
    Series,
    batch_estimate,
    best_window,
    plan_eco_start,
    window_cost,
)
from easyflow_cli.core.forecast import Forecast, Interval, Unit
from easyflow_cli.core.offpeak import parse_window

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
HOUR = timedelta(hours=1)
DAY = timedelta(hours=24)


def hourly(values, unit=Unit.PER_KWH, start=NOW):
    return Forecast(unit, "test.csv", tuple(
        Interval(start + i * HOUR, start + (i + 1) * HOUR, v) for i, v in enumerate(values)))


def series(values, optimise=Optimise.COST, unit=Unit.PER_KWH, **prices):
    return Series(optimise, hourly(values, unit), **prices)


# 12:00 0.30, 13:00 0.25, ..., 15:00 0.05 (the cheapest), 16:00 0.40, 17:00 -0.02 (negative)
PRICES = [0.30, 0.25, 0.20, 0.05, 0.40, -0.02, 0.10, 0.30]
ONE_KWH_HOUR = RunEstimate(HOUR, 1.0)


def plan(values, estimate=ONE_KWH_HOUR, deadline=None, max_delay=DAY, off_peak=None, **kw):
    return plan_eco_start(series(values, **kw), estimate, now=NOW, deadline=deadline,
                          max_delay=max_delay, off_peak=off_peak)


def test_the_cheapest_feasible_hour_is_chosen_negative_prices_included():
    assert plan(PRICES).not_before == NOW + 5 * HOUR


def test_the_deadline_rules_out_windows_that_would_finish_late():
    assert plan(PRICES, deadline=NOW + 5 * HOUR).not_before == NOW + 3 * HOUR
    assert plan(PRICES, deadline=NOW + 6 * HOUR).not_before == NOW + 5 * HOUR


def test_without_a_deadline_the_run_starts_within_max_delay():
    assert plan(PRICES, max_delay=4 * HOUR).not_before == NOW + 3 * HOUR
    assert plan(PRICES, max_delay=2 * HOUR).not_before == NOW + 2 * HOUR


def test_a_window_may_start_between_boundaries_when_that_is_cheapest():
    # 1.5 h over [0.5, 0.1, 0.9]: ending as the cheap hour ends (12:30) beats starting as it
    # starts (13:00), as half an hour at 0.5 is cheaper than half an hour at 0.9.
    chosen = plan([0.5, 0.1, 0.9], RunEstimate(timedelta(minutes=90), 1.5))
    assert chosen.not_before == NOW + timedelta(minutes=30)


def test_the_chosen_window_is_the_brute_force_minimum():
    values = [0.31, 0.12, 0.47, 0.09, 0.11, 0.52, 0.08, 0.33, 0.07, 0.44, 0.2, 0.6]
    s = series(values)
    estimate = RunEstimate(timedelta(minutes=137), 2.0)
    last = NOW + 9 * HOUR
    window = best_window(s, estimate, NOW, last)
    minutes = int((last - NOW).total_seconds() // 60)
    brute = min(window_cost(s, NOW + timedelta(minutes=m), estimate) for m in range(minutes + 1))
    assert window.cost == pytest.approx(brute)


def test_starting_now_when_now_is_cheapest_leaves_no_not_before():
    chosen = plan([0.01, 0.5, 0.5])
    assert chosen.not_before is None
    assert chosen.reason.endswith("starting now")


def test_the_reason_names_the_window_its_cost_and_the_cost_now():
    chosen = plan(PRICES, estimate=RunEstimate(HOUR, 0.01))
    assert chosen.reason.startswith("cheapest window ")
    assert chosen.reason.endswith(", -$0.0002 vs $0.003 now")


def test_a_carbon_forecast_gives_the_cleanest_window_in_grams():
    chosen = plan([300, 120, 80, 250], optimise=Optimise.CARBON, unit=Unit.G_CO2_PER_KWH)
    assert chosen.not_before == NOW + 2 * HOUR
    assert chosen.reason.startswith("cleanest window ")
    assert chosen.reason.endswith("80 g CO2 vs 300 g CO2 now")


def test_a_multiplier_tariff_prices_the_pools_worker_hours():
    chosen = plan([1.0, 0.5, 2.0], unit=Unit.MULTIPLIER, worker_hour_price=0.1)
    assert chosen.not_before == NOW + HOUR
    assert chosen.reason.endswith("$0.05 vs $0.1 now")


def test_where_the_forecast_runs_out_the_off_peak_window_is_used():
    window = parse_window("22:00-06:00")
    short = plan([0.2], estimate=RunEstimate(2 * HOUR, 1.0), off_peak=window)
    assert short.not_before == window.next_start(NOW)
    assert short.reason.startswith("off-peak window 22:00-06:00 (no window in test.csv")
    assert plan([0.2], estimate=RunEstimate(2 * HOUR, 1.0)) is None


def test_no_window_that_misses_the_deadline_even_at_off_peak():
    window = parse_window("22:00-06:00")
    late = NOW + 3 * HOUR
    chosen = plan_eco_start(series([0.2]), RunEstimate(2 * HOUR, 1.0), now=NOW.astimezone(),
                            deadline=late, max_delay=DAY, off_peak=window)
    assert chosen is None or chosen.not_before is None or chosen.not_before + 2 * HOUR <= late


def test_a_batch_lasts_its_busiest_workers_runs_and_uses_all_their_energy():
    batch = batch_estimate(RunEstimate(timedelta(minutes=10), 0.01), runs=5, workers=2)
    assert batch == RunEstimate(timedelta(minutes=30), pytest.approx(0.05))


def test_the_latest_start_is_never_before_now():
    from easyflow_cli.core.eco_plan import latest_start

    assert latest_start(NOW, None, HOUR, -HOUR) == NOW
    assert latest_start(NOW, NOW + HOUR, 2 * HOUR, DAY) == NOW
    assert latest_start(NOW, NOW + 5 * HOUR, HOUR, DAY, margin=HOUR) == NOW + 3 * HOUR
