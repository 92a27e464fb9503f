"""Exact numbers of the price model, peak vs off-peak, savings, and quotes."""

from datetime import UTC, datetime

import pytest

from easyflow_cli.core.config import load_config
from easyflow_cli.core.costs import Prices, baseline_cost, energy_wh, quote, run_cost, savings_pct
from easyflow_cli.core.model import Mode


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


def test_quote_without_history_uses_default(home):
    config = load_config()
    now = datetime(2026, 11, 25, 12, 0).astimezone()
    rt = quote(config, Mode.REAL_TIME, now, {}, {})
    assert rt.start == now and rt.duration_s == 60.0
    assert rt.cost == pytest.approx(60 / 3600 * 0.10)
    assert rt.basis == "no history: default duration"
    eco = quote(config, Mode.ECO, now, {}, {})
    assert eco.start.astimezone().hour == 22  # waits for the off-peak window
    assert eco.cost == pytest.approx(60 / 3600 * 0.02)  # and gets the off-peak price
    assert eco.cost < rt.cost


def test_quote_uses_history(home):
    config = load_config()
    now = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
    history = {"real-time": (36.0, 1.0), "eco": (72.0, 1.0)}
    counts = {"real-time": 4, "eco": 2}
    rt = quote(config, Mode.REAL_TIME, now, history, counts)
    assert rt.duration_s == 36.0 and rt.basis == "median of 4 real-time runs"
    assert (rt.finish - rt.start).total_seconds() == 36.0
    balanced = quote(config, Mode.BALANCED, now, history, counts)
    assert balanced.duration_s == 36.0  # borrowed from the mode with most history
    assert balanced.basis == "median of 4 real-time runs"
