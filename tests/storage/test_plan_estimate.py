"""What the eco planner expects of a workflow's next run: p90 duration and energy learned from
its recent successes; the median or the default duration, and one core's energy, before that."""

from datetime import UTC, datetime, timedelta

import pytest

from easyflow_cli.core.config import Optimise
from easyflow_cli.core.eco_plan import RunEstimate, Series
from easyflow_cli.core.forecast import Forecast, Unit
from easyflow_cli.core.learned import RunSample
from easyflow_cli.core.planning import QueuePolicy
from easyflow_cli.storage.plan_estimate import eco_estimate, run_estimate

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
SERIES = Series(Optimise.CARBON, Forecast(Unit.G_CO2_PER_KWH, "c.csv", ()), watts_per_core=36.0,
                default_duration_s=600.0)


class History:
    """The two reads the estimate makes, over a fixed list of samples."""

    def __init__(self, samples, typical=None):
        self.samples, self.typical = samples, typical

    def recent_successes(self, workflow, mode=None, limit=50):
        return self.samples

    def typical_duration(self, workflow, sample=20):
        return self.typical


def sample(seconds, cpu=10.0, energy=None):
    return RunSample(NOW, seconds, cpu, energy)


def test_enough_runs_give_the_p90_duration_and_measured_energy():
    # Newest first; the oldest, slow run weighs little against the nine newer ones.
    samples = [sample(100.0 + i, energy=3.6e6) for i in range(9)] + [sample(500.0, energy=7.2e6)]
    estimate = run_estimate(History(samples), "w", SERIES)
    assert estimate.duration == timedelta(seconds=107)
    assert estimate.energy_kwh == pytest.approx(1.0)


def test_unmeasured_energy_is_cpu_time_at_the_watts_per_core():
    estimate = run_estimate(History([sample(60.0, cpu=100.0)] * 5), "w", SERIES)
    assert estimate.energy_kwh == pytest.approx(100 * 36 / 3.6e6)


def test_too_few_runs_fall_back_to_the_median_else_the_default_duration():
    few = run_estimate(History([sample(60.0)] * 4, timedelta(seconds=80)), "w", SERIES)
    assert few == RunEstimate(timedelta(seconds=80), pytest.approx(80 * 36 / 3.6e6))
    none = run_estimate(History([]), "w", SERIES)
    assert none.duration == timedelta(seconds=600)


def test_nothing_is_estimated_without_a_forecast_to_plan_by():
    assert eco_estimate(History([]), "w", QueuePolicy()) is None
    assert eco_estimate(History([]), "w", QueuePolicy(series=SERIES)) is not None
