from datetime import UTC, datetime, timedelta

from easyflow_cli.core.forecast import Forecast, Interval, Unit
from easyflow_cli.core.shifting import lowest_start, shift_means

T0 = datetime(2026, 12, 1, tzinfo=UTC)
HOUR = 3600.0


def series(*values: float) -> Forecast:
    return Forecast(Unit.G_CO2_PER_KWH, "test", tuple(
        Interval(T0 + timedelta(hours=h), T0 + timedelta(hours=h + 1), v)
        for h, v in enumerate(values)))


def test_lowest_start_is_the_cheapest_covered_start_within_reach():
    hours = series(500, 400, 100, 300, 50)
    assert lowest_start(hours, T0, 3 * HOUR, HOUR) == T0 + timedelta(hours=2)
    assert lowest_start(hours, T0, 1 * HOUR, HOUR) == T0 + timedelta(hours=1)
    # Two hours long: 300 and 50 (175) beats 100 and 300; the last hour alone (50) is not
    # covered for two hours, so it does not count.
    assert lowest_start(hours, T0 + timedelta(hours=2), 9 * HOUR, 2 * HOUR) == (
        T0 + timedelta(hours=3))
    assert lowest_start(hours, T0 + timedelta(hours=9), HOUR, HOUR) is None


def test_shift_means_averages_every_arrival_at_once_and_where_it_was_put():
    hours = series(300, 300, 100)
    shift = shift_means(hours, HOUR, lambda arrival: lowest_start(hours, arrival, 2 * HOUR, HOUR))
    assert shift is not None
    assert (shift.at_once, shift.planned, shift.arrivals) == (700 / 3, 100.0, 3)
    assert shift_means(series(), HOUR, lambda arrival: None) is None
