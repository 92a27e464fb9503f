"""Exact numbers of the price model, peak vs off-peak, savings, and quotes."""

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from easyflow_cli.core.config import load_config
from easyflow_cli.core.costs import (
    ModeHistory,
    Prices,
    baseline_cost,
    cost_at,
    energy_wh,
    quote,
    run_cost,
    savings_pct,
)
from easyflow_cli.core.forecast import Forecast, Interval, Unit
from easyflow_cli.core.learned import RunSample, expect, learn
from easyflow_cli.core.model import Mode
from easyflow_cli.core.spec import StepSpec, WorkflowSpec


@pytest.fixture
def prices(home):
    return Prices.from_config(load_config())


def test_default_prices_follow_the_seed(prices):
    assert prices.per_hour[Mode.REAL_TIME] == (0.10, 0.06)
    assert prices.per_hour[Mode.BALANCED] == (0.08, 0.05)
    assert prices.per_hour[Mode.ECO] == (0.05, 0.02)
    assert prices.baseline_price == 0.10 and prices.currency == "USD"


def test_run_cost_peak_and_off_peak(prices):
    # One worker-hour of each.
    assert run_cost(prices, Mode.REAL_TIME, False, 3600, 0) == pytest.approx(0.10)
    assert run_cost(prices, Mode.REAL_TIME, True, 3600, 0) == pytest.approx(0.06)
    assert run_cost(prices, "eco", False, 3600, 0) == pytest.approx(0.05)
    assert run_cost(prices, "eco", True, 3600, 0) == pytest.approx(0.02)
    # Half an hour of balanced at peak.
    assert run_cost(prices, "balanced", False, 1800, 0) == pytest.approx(0.04)


def test_cpu_hour_price_adds(prices):
    with_cpu = Prices(prices.per_hour, cpu_hour_price=0.5, currency="USD")
    assert run_cost(with_cpu, "eco", True, 3600, 7200) == pytest.approx(0.02 + 1.0)
    assert baseline_cost(with_cpu, 3600, 7200) == pytest.approx(0.10 + 1.0)


def test_savings_against_real_time_at_peak(prices):
    # Two hours of eco overnight against two hours of real-time at peak: 0.04 vs 0.20.
    actual = run_cost(prices, "eco", True, 7200, 0)
    baseline = baseline_cost(prices, 7200, 0)
    assert (actual, baseline) == (pytest.approx(0.04), pytest.approx(0.20))
    assert savings_pct(baseline, actual) == 80.0
    assert savings_pct(0, 0) == 0.0


def test_energy_estimate():
    assert energy_wh(3600, 15) == 15.0
    assert energy_wh(90, 20) == 0.5


SPEC = WorkflowSpec(name="w", steps=(StepSpec(name="s", run=("true",)),))


def test_quote_without_history_uses_default(home):
    config = load_config()
    now = datetime(2026, 11, 25, 12, 0).astimezone()
    rt = quote(config, SPEC, Mode.REAL_TIME, now, {})
    assert rt.start == now and rt.duration_s == 60.0
    assert rt.cost == pytest.approx(60 / 3600 * 0.10)
    assert rt.basis == "no history: default duration"
    eco = quote(config, SPEC, Mode.ECO, now, {})
    assert eco.start.astimezone().hour == 22  # waits for the off-peak window
    assert eco.cost == pytest.approx(60 / 3600 * 0.02)  # and gets the off-peak price
    assert eco.cost < rt.cost


def test_quote_uses_history(home):
    config = load_config()
    now = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
    history = {"real-time": ModeHistory(36.0, 1.0, 4), "eco": ModeHistory(72.0, 1.0, 2)}
    rt = quote(config, SPEC, Mode.REAL_TIME, now, history)
    assert rt.duration_s == 36.0 and rt.basis == "median of 4 real-time runs"
    assert (rt.finish - rt.start).total_seconds() == 36.0
    balanced = quote(config, SPEC, Mode.BALANCED, now, history)
    assert balanced.duration_s == 36.0  # borrowed from the mode with most history
    assert balanced.basis == "median of 4 real-time runs"


def test_quote_stops_at_the_timeout(home):
    """A run is killed at its timeout: the workflow's own, else its pool's (real-time: 1m)."""
    config = load_config()
    now = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
    history = {"real-time": ModeHistory(600.0, 300.0, 3)}
    rt = quote(config, SPEC, Mode.REAL_TIME, now, history)
    assert rt.duration_s == 60.0 and rt.cost == pytest.approx(60 / 3600 * 0.10)
    assert rt.basis == "median of 3 real-time runs, cut at its 1m timeout"
    own = quote(config, replace(SPEC, timeout=120.0), Mode.REAL_TIME, now, history)
    assert own.duration_s == 120.0 and (own.finish - own.start).total_seconds() == 120.0
    quick = quote(config, replace(SPEC, timeout=120.0), Mode.REAL_TIME, now,
                  {"real-time": ModeHistory(30.0, 0.0, 3)})
    assert quick.duration_s == 30.0 and "timeout" not in quick.basis


def test_quote_counts_failed_runs_and_their_retries(home):
    config = load_config()
    now = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
    history = {"real-time": ModeHistory(36.0, 0.0, 4, failed=2)}
    once = quote(config, SPEC, Mode.REAL_TIME, now, history)
    assert once.cost == pytest.approx(36 / 3600 * 0.10)  # no retries: one attempt, paid for
    assert once.basis == "median of 4 real-time runs, 2 failed"
    retried = quote(config, replace(SPEC, retries=2), Mode.REAL_TIME, now, history)
    # Half fail: 1 + 1/2 + 1/4 attempts on average.
    assert retried.cost == pytest.approx(36 / 3600 * 0.10 * 1.75)
    assert retried.basis == "median of 4 real-time runs, 2 failed, 1.8 attempts with retries"


def learned(durations, cpu=2.0):
    samples = [RunSample(datetime(2026, 11, 25, tzinfo=UTC), d, cpu, None) for d in durations]
    return expect(learn(samples), samples, mode="real-time", watts_per_core=15.0,
                  default_duration=60.0)


def test_quote_uses_the_learned_p50_once_there_are_enough_runs(home):
    config = load_config()
    now = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
    history = {"real-time": ModeHistory(36.0, 1.0, 8, failed=4)}
    rt = quote(config, replace(SPEC, retries=1), Mode.REAL_TIME, now, history,
               learned([20.0] * 3 + [40.0] * 5))
    assert rt.duration_s == 20.0 and (rt.finish - rt.start).total_seconds() == 20.0
    # The failures still cost their retries: 1.5 attempts of the learned run.
    assert rt.cost == pytest.approx((20 / 3600 * 0.10) * 1.5)
    assert rt.basis == ("p50 learned from 8 real-time runs, typically off by 20s,"
                        " 1.5 attempts with retries")
    few = quote(config, SPEC, Mode.REAL_TIME, now, history, learned([20.0] * 3))
    assert few.duration_s == 36.0 and few.basis == "median of 8 real-time runs, 4 failed"


NIGHT = datetime(2026, 12, 2, 2, 0, tzinfo=UTC)
# 0.12 per kWh until 06:00, then 0.30: the tariff covers 00:00-12:00 only.
TARIFF = Forecast(Unit.PER_KWH, "csv tariff.csv", (
    Interval(NIGHT - timedelta(hours=2), NIGHT + timedelta(hours=4), 0.12),
    Interval(NIGHT + timedelta(hours=4), NIGHT + timedelta(hours=10), 0.30)))


def test_a_quote_starts_at_its_planned_start_and_is_priced_by_the_tariff(home):
    config = load_config()
    history = {"eco": ModeHistory(240.0, 120.0, 5)}
    planned = quote(config, SPEC, Mode.ECO, NIGHT - timedelta(hours=1), history, start=NIGHT,
                    tariff=TARIFF)
    energy_kwh = 120 * config.costs.watts_per_core / 3.6e6  # estimated from the CPU time
    cpu_cost = 120 / 3600 * config.costs.cpu_hour_price
    assert planned.start == NIGHT and planned.finish == NIGHT + timedelta(seconds=240)
    assert planned.cost == pytest.approx(0.12 * energy_kwh + cpu_cost)
    assert planned.basis == "median of 5 eco runs, priced by csv tariff.csv"
    later = quote(config, SPEC, Mode.ECO, NIGHT, history, start=NIGHT + timedelta(hours=5),
                  tariff=TARIFF)
    assert later.cost == pytest.approx(0.30 * energy_kwh + cpu_cost)


def test_a_quote_the_tariff_does_not_cover_is_priced_by_the_pools(home):
    config = load_config()
    history = {"real-time": ModeHistory(600.0, 0.0, 3)}
    beyond = NIGHT + timedelta(days=1)
    with_tariff = quote(config, SPEC, Mode.REAL_TIME, beyond, history, tariff=TARIFF)
    assert with_tariff == quote(config, SPEC, Mode.REAL_TIME, beyond, history)
    assert with_tariff.start == beyond and "priced by" not in with_tariff.basis


def test_cost_at_says_what_priced_it(home):
    config = load_config()
    assert cost_at(config, Mode.ECO, NIGHT, 3600, 0, 2.0, TARIFF) == (
        pytest.approx(0.24), "csv tariff.csv")
    window = config.tariff_window
    cost, basis = cost_at(config, Mode.ECO, NIGHT, 3600, 0, 2.0)
    assert window is not None and window.contains(NIGHT) and basis == "off-peak pool prices"
    assert cost == pytest.approx(0.02)
