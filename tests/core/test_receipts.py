from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from easyflow_cli.core.costs import Prices
from easyflow_cli.core.forecast import Forecast, Interval, Unit
from easyflow_cli.core.model import CostPriority, Mode, ModeReason, Run, RunState, Trigger
from easyflow_cli.core.receipts import (
    FLAT_PRICES,
    Charges,
    Pricing,
    Stretch,
    charges_of,
    receipt_of,
)

T0 = datetime(2026, 12, 2, tzinfo=UTC)
H = timedelta(hours=1)
PRICES = Prices(per_hour={Mode.REAL_TIME: (0.10, 0.06), Mode.BALANCED: (0.08, 0.05),
                          Mode.ECO: (0.05, 0.02)}, cpu_hour_price=0.0, currency="USD")


def hourly(values, unit):
    return Forecast(unit, f"test {unit}", tuple(
        Interval(T0 + i * H, T0 + (i + 1) * H, v) for i, v in enumerate(values)))


# Submitted at 00:00 (price 0.30/kWh, 400 g/kWh), ran 03:00–03:30 (−0.05/kWh, 100 g/kWh).
DEFERRED = Stretch(Mode.ECO, T0, T0 + 3 * H, 1800.0, cpu_s=3600.0, energy_j=None)
TARIFF = hourly([0.30, 0.30, 0.30, -0.05, 0.30], Unit.PER_KWH)
CARBON = hourly([400, 400, 400, 100, 400], Unit.G_CO2_PER_KWH)


def test_per_kwh_prices_the_energy_when_it_ran_and_at_once():
    # One busy core-hour at 15 W: 0.015 kWh (no RAPL reading).
    charges = charges_of(Pricing(PRICES, 15.0, tariff=TARIFF), DEFERRED)
    assert charges.tariff_cost == pytest.approx(-0.05 * 0.015)  # paid to use it
    assert charges.tariff_baseline_cost == pytest.approx(0.30 * 0.015)
    assert charges.tariff_source == "test per_kwh" and charges.carbon_g is None


def test_measured_energy_wins_over_the_estimate():
    measured = replace(DEFERRED, energy_j=3.6e6)  # 1 kWh
    charges = charges_of(Pricing(PRICES, 15.0, tariff=TARIFF), measured)
    assert charges.tariff_cost == pytest.approx(-0.05)


def test_a_multiplier_scales_the_pool_price_and_real_time_is_the_baseline():
    tariff = hourly([2.0, 2.0, 2.0, 0.5, 2.0], Unit.MULTIPLIER)
    pricing = Pricing(replace(PRICES, cpu_hour_price=0.01), 15.0, tariff=tariff)
    charges = charges_of(pricing, DEFERRED)
    cpu = 1.0 * 0.01  # one CPU-hour, in both
    assert charges.tariff_cost == pytest.approx(0.5 * 0.05 * 0.5 + cpu)
    assert charges.tariff_baseline_cost == pytest.approx(2.0 * 0.10 * 0.5 + cpu)


def test_carbon_is_energy_times_intensity():
    charges = charges_of(Pricing(PRICES, 15.0, carbon=CARBON), DEFERRED)
    assert charges.carbon_g == pytest.approx(100 * 0.015)
    assert charges.baseline_carbon_g == pytest.approx(400 * 0.015)
    assert charges.carbon_source == "test gCO2/kWh" and charges.tariff_cost is None


def test_a_series_that_does_not_cover_both_stretches_charges_nothing():
    late = replace(DEFERRED, began_at=T0 + 4.75 * H)  # runs past the series' end
    assert charges_of(Pricing(PRICES, 15.0, TARIFF, CARBON), late) == Charges()


def run(**fields):
    base = dict(id=7, workflow="w", trigger=Trigger.SCHEDULE, mode=Mode.ECO,
                mode_reason=ModeReason.SCHEDULE, cost_priority=CostPriority.NORMAL,
                deadline=None, state=RunState.SUCCEEDED, enqueued_at=T0,
                started_at=T0 + 3 * H, finished_at=T0 + 3.5 * H, duration_s=1800.0,
                cpu_user_s=3000.0, cpu_system_s=600.0, queue_wait_s=3 * 3600.0, off_peak=False)
    return Run(**(base | fields))


def test_a_receipt_without_a_tariff_is_priced_as_report_costs_prices():
    receipt = receipt_of(run(), Charges(), PRICES, 15.0)
    assert receipt is not None and receipt.price_source == FLAT_PRICES
    assert receipt.cost == pytest.approx(0.5 * 0.05)
    assert receipt.baseline_cost == pytest.approx(0.5 * 0.10)
    assert receipt.saving_pct == 50.0 and receipt.waited_s == 3 * 3600
    assert receipt.energy_wh == pytest.approx(15.0) and receipt.energy_source == "estimate"


def test_a_receipt_under_a_tariff_keeps_what_the_run_was_charged():
    charges = Charges(0.0004, 0.0017, "csv from tariff.csv", 0.3, 0.9, "UK carbon intensity")
    receipt = receipt_of(run(), charges, PRICES, 15.0)
    assert receipt is not None
    assert (receipt.cost, receipt.baseline_cost) == (0.0004, 0.0017)
    assert receipt.as_json()["saving_pct"] == pytest.approx(76.47)
    assert receipt.as_json()["price_source"] == "tariff: csv from tariff.csv"
    assert receipt.as_json()["carbon_g"] == 0.3


def test_no_receipt_for_a_run_that_never_occupied_a_worker():
    assert receipt_of(run(state=RunState.CANCELLED, duration_s=None), Charges(), PRICES,
                      15.0) is None
    assert receipt_of(run(state=RunState.RUNNING), Charges(), PRICES, 15.0) is None
