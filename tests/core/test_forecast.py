from datetime import UTC, datetime, timedelta

import pytest

from easyflow_cli.core.forecast import Forecast, Interval, Unit, stretch_cost

T0 = datetime(2026, 12, 1, tzinfo=UTC)
H = timedelta(hours=1)


def hourly(values, unit=Unit.PER_KWH, start=T0):
    return Forecast(unit, "csv: test", tuple(
        Interval(start + i * H, start + (i + 1) * H, v) for i, v in enumerate(values)))


def test_value_at_and_the_end_of_the_series():
    series = hourly([0.30, -0.05, 0.10])
    assert series.value_at(T0) == 0.30
    assert series.value_at(T0 + 1.5 * H) == -0.05  # negative prices are allowed
    assert series.value_at(T0 + 3 * H) is None and series.value_at(T0 - H) is None
    assert (series.start, series.end) == (T0, T0 + 3 * H)


def test_mean_over_is_time_weighted_and_none_past_the_end():
    series = hourly([0.30, 0.10])
    assert series.mean_over(T0 + 0.5 * H, T0 + 1.5 * H) == pytest.approx(0.20)
    assert series.mean_over(T0 + 1.5 * H, T0 + 2.5 * H) is None


def test_a_gap_is_not_covered():
    series = Forecast(Unit.PER_KWH, "csv", (Interval(T0, T0 + H, 1.0),
                                            Interval(T0 + 2 * H, T0 + 3 * H, 1.0)))
    assert series.mean_over(T0, T0 + 3 * H) is None
    assert series.boundaries(T0, T0 + 3 * H) == [T0, T0 + 2 * H]


def test_overlapping_intervals_are_refused():
    with pytest.raises(ValueError, match="overlap"):
        Forecast(Unit.PER_KWH, "csv", (Interval(T0, T0 + 2 * H, 1.0),
                                       Interval(T0 + H, T0 + 3 * H, 1.0)))


def test_stretch_cost_by_unit():
    per_kwh = hourly([0.20, 0.40])
    assert stretch_cost(per_kwh, T0, T0 + 2 * H, energy_kwh=0.5, worker_hour_price=0.05) == (
        pytest.approx(0.15))
    times = hourly([2.0, 0.5], Unit.MULTIPLIER)
    assert stretch_cost(times, T0 + H, T0 + 2 * H, energy_kwh=0.5, worker_hour_price=0.05) == (
        pytest.approx(0.025))
    carbon = hourly([200.0], Unit.G_CO2_PER_KWH)
    assert stretch_cost(carbon, T0, T0 + H, energy_kwh=0.01, worker_hour_price=0) == 2.0
    assert stretch_cost(carbon, T0, T0 + 2 * H, energy_kwh=0.01, worker_hour_price=0) is None
