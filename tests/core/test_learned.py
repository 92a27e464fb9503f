from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from easyflow_cli.core.learned import (
    MIN_RUNS,
    RunSample,
    Spread,
    expect,
    learn,
    prediction_error,
    recency_weights,
    weighted_quantile,
)

T0 = datetime(2026, 12, 1, tzinfo=UTC)


def samples(durations, energy=None):
    """Newest first, one a minute apart."""
    return [RunSample(T0 - timedelta(minutes=i), d, d / 2, energy) for i, d in enumerate(durations)]


def test_no_runs_learns_nothing():
    learned = learn([])
    assert (learned.runs, learned.duration, learned.enough) == (0, None, False)


def test_few_runs_are_not_enough():
    learned = learn(samples([10.0] * (MIN_RUNS - 1)))
    assert not learned.enough and learned.duration.p50 == 10.0 and learned.error_s is None


def test_p50_and_p90_of_equal_weights_are_the_plain_quantiles():
    values = [float(v) for v in range(1, 11)]
    weights = [1.0] * 10
    assert weighted_quantile(values, weights, 0.5) == 5.0
    assert weighted_quantile(values, weights, 0.9) == 9.0


def test_a_changed_job_is_learned_within_a_few_runs():
    """Twenty runs of 60 s, then the job takes 120 s: the p90 says so at once, the p50 after
    three new runs."""
    assert learn(samples([120.0] + [60.0] * 20)).duration == Spread(60.0, 120.0)
    assert learn(samples([120.0] * 2 + [60.0] * 20)).duration.p50 == 60.0
    assert learn(samples([120.0] * 3 + [60.0] * 20)).duration == Spread(120.0, 120.0)


def test_recency_weights_halve_every_half_life():
    weights = recency_weights(7)
    assert weights[0] == 1.0 and abs(weights[3] - 0.5) < 1e-12 and abs(weights[6] - 0.25) < 1e-12


def test_prediction_error_is_the_median_miss_of_each_run_predicted_from_those_before():
    steady = samples([30.0] * 15)
    assert prediction_error(steady) == 0.0
    alternating = samples([30.0, 40.0] * 8)
    assert prediction_error(alternating) is not None and prediction_error(alternating) > 0


def test_energy_is_none_when_no_run_has_it():
    assert learn(samples([1.0] * 6)).energy is None
    assert learn(samples([1.0] * 6, energy=5.0)).energy.p90 == 5.0


def test_window_is_oldest_to_newest():
    learned = learn(samples([1.0] * 6))
    assert learned.newest == T0 and learned.oldest == T0 - timedelta(minutes=5)


@given(st.lists(st.floats(min_value=0.001, max_value=1e6), min_size=1, max_size=60))
def test_p50_never_exceeds_p90_and_both_are_observed(values):
    learned = learn(samples(values))
    assert learned.duration.p50 <= learned.duration.p90
    assert learned.duration.p50 in values and learned.duration.p90 in values


def expectation(durations, energy=None, mode="eco"):
    runs = samples(durations, energy)
    return expect(learn(runs), runs, mode=mode, watts_per_core=36.0, default_duration=45.0)


def test_expectation_is_learned_from_enough_runs():
    figures = expectation([120.0] * 3 + [60.0] * 20)
    assert figures.enough and figures.duration == Spread(120.0, 120.0)
    assert figures.basis == "learned from 23 eco runs"
    assert expectation([10.0] * 6, mode=None).basis == "learned from 6 runs"


def test_expectation_under_min_runs_is_their_plain_median():
    figures = expectation([10.0, 30.0, 20.0, 1000.0])
    assert not figures.enough and figures.duration == Spread(25.0, 25.0)
    assert figures.cpu == Spread(12.5, 12.5)
    assert figures.basis == f"fewer than {MIN_RUNS} runs: median of 4"


def test_expectation_without_runs_is_the_default_duration():
    figures = expectation([])
    assert figures.duration == Spread(45.0, 45.0) and figures.margin_s == 0.0
    assert figures.basis == "no history: default duration"


def test_energy_is_measured_where_runs_measured_it_else_estimated_from_cpu():
    measured = expectation([1.0] * 6, energy=7200.0)
    assert measured.energy_measured and measured.energy_kwh == Spread(0.002, 0.002)
    estimated = expectation([200.0] * 6)  # 100 CPU-seconds at 36 W: 1 Wh
    assert not estimated.energy_measured and estimated.energy_kwh == Spread(0.001, 0.001)


def test_margin_is_the_recent_prediction_error():
    figures = expectation([30.0, 40.0] * 8)
    assert figures.margin_s == figures.learned.error_s > 0


def test_few_runs_that_measured_energy_give_its_median():
    figures = expectation([1.0, 2.0], energy=3600.0)
    assert figures.energy_measured and figures.energy_kwh == Spread(0.001, 0.001)
