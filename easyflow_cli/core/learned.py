"""What a workflow's recent successful runs say about its next one: p50 and p90 of its duration,
CPU time and energy, weighted toward the newest runs, and how wrong that prediction has been.

Pure: the queue reads the samples (`RunQueue.recent_successes`), this turns them into figures.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from easyflow_cli.core.stats import median

# Under this many runs the figures are shown as a guess and callers fall back as before.
MIN_RUNS = 5
# A run's weight halves every this many runs back: a job that changed is learned within a few.
HALF_LIFE_RUNS = 3.0
# How many of the newest runs the accuracy is measured on, each predicted from those before it.
ACCURACY_RUNS = 10


@dataclass(frozen=True, slots=True)
class RunSample:
    """One successful run, as the learning reads it."""

    finished_at: datetime
    duration_s: float
    cpu_s: float
    energy_j: float | None


@dataclass(frozen=True, slots=True)
class Spread:
    p50: float
    p90: float


@dataclass(frozen=True)
class LearnedDurations:
    runs: int                      # successful runs the figures rest on
    oldest: datetime | None        # the window they span
    newest: datetime | None
    duration: Spread | None
    cpu: Spread | None
    energy: Spread | None          # None when no run measured or estimated its energy
    error_s: float | None          # median absolute error of the predicted p50 duration

    @property
    def enough(self) -> bool:
        return self.runs >= MIN_RUNS


def learn(samples: Sequence[RunSample]) -> LearnedDurations:
    """The figures from `samples`, newest first."""
    if not samples:
        return LearnedDurations(0, None, None, None, None, None, None)
    energies = [s.energy_j for s in samples if s.energy_j is not None]
    return LearnedDurations(
        runs=len(samples),
        oldest=samples[-1].finished_at,
        newest=samples[0].finished_at,
        duration=spread([s.duration_s for s in samples]),
        cpu=spread([s.cpu_s for s in samples]),
        energy=spread(energies) if energies else None,
        error_s=prediction_error(samples),
    )


def spread(newest_first: Sequence[float]) -> Spread:
    weights = recency_weights(len(newest_first))
    return Spread(weighted_quantile(newest_first, weights, 0.5),
                  weighted_quantile(newest_first, weights, 0.9))


def recency_weights(count: int) -> list[float]:
    return [0.5 ** (age / HALF_LIFE_RUNS) for age in range(count)]


def weighted_quantile(values: Sequence[float], weights: Sequence[float], q: float) -> float:
    """The smallest value whose cumulative weight reaches `q` of the total."""
    pairs = sorted(zip(values, weights, strict=True))
    target = q * sum(weights)
    reached = 0.0
    for value, weight in pairs:
        reached += weight
        if reached >= target - 1e-12:
            return value
    return pairs[-1][0]


def prediction_error(newest_first: Sequence[RunSample]) -> float | None:
    """Each of the newest runs predicted (p50) from the runs before it, as they stood then:
    the median of |actual - predicted|. None until there is a run with enough before it."""
    errors = []
    for index in range(min(ACCURACY_RUNS, len(newest_first))):
        before = newest_first[index + 1:]
        if len(before) < MIN_RUNS:
            break
        predicted = spread([s.duration_s for s in before]).p50
        errors.append(abs(newest_first[index].duration_s - predicted))
    return median(errors) if errors else None
