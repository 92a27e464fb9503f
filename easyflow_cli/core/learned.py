"""What a workflow's recent successful runs say about its next one: p50 and p90 of its duration,
CPU time and energy, weighted toward the newest runs, and how wrong that prediction has been.

Pure: the queue reads the samples (`RunQueue.recent_successes`), this turns them into figures.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

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

    def as_json(self) -> dict[str, Any]:
        from easyflow_cli.core.timeutil import to_iso

        return {"runs": self.runs, "enough": self.enough,
                "oldest": to_iso(self.oldest) if self.oldest else None,
                "newest": to_iso(self.newest) if self.newest else None,
                "duration_s": _spread_json(self.duration), "cpu_s": _spread_json(self.cpu),
                "energy_j": _spread_json(self.energy),
                "error_s": None if self.error_s is None else round(self.error_s, 6)}


def _spread_json(spread: Spread | None) -> dict[str, float] | None:
    return None if spread is None else {"p50": spread.p50, "p90": spread.p90}


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
    count = len(newest_first)
    weights = _WEIGHTS[:count] if count <= len(_WEIGHTS) else recency_weights(count)
    pairs = sorted(zip(newest_first, weights, strict=True))
    p50, p90 = _quantiles(pairs, (0.5, 0.9))
    return Spread(p50, p90)


def recency_weights(count: int) -> list[float]:
    return [0.5 ** (age / HALF_LIFE_RUNS) for age in range(count)]


_WEIGHTS = recency_weights(64)  # most histories are shorter: their weights made once


def weighted_quantile(values: Sequence[float], weights: Sequence[float], q: float) -> float:
    """The smallest value whose cumulative weight reaches `q` of the total."""
    return _quantiles(sorted(zip(values, weights, strict=True)), (q,))[0]


def _quantiles(pairs: Sequence[tuple[float, float]], qs: Sequence[float]) -> list[float]:
    """`weighted_quantile` of each of `qs` (ascending), over (value, weight) pairs in order."""
    total = sum(weight for _, weight in pairs)
    targets = iter([q * total - 1e-12 for q in qs])
    target = next(targets)
    found: list[float] = []
    reached = 0.0
    for value, weight in pairs:
        reached += weight
        while reached >= target:
            found.append(value)
            target = next(targets, math.inf)
        if target == math.inf:
            return found
    return found + [pairs[-1][0]] * (len(qs) - len(found))


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


JOULES_PER_KWH = 3.6e6


@dataclass(frozen=True)
class Expectation:
    """What the next run of a workflow in a mode is expected to take, for promotion, quotes and
    the planner: learned (`learned.enough`), else the plain median of the few runs there are,
    else the configured default duration. Energy is measured where runs measured it, else
    estimated from their CPU time."""

    duration: Spread               # seconds
    cpu: Spread                    # CPU seconds
    energy_kwh: Spread
    energy_measured: bool
    basis: str                     # where the figures come from, in words
    learned: LearnedDurations      # the evidence: runs, window, accuracy

    @property
    def enough(self) -> bool:
        return self.learned.enough

    @property
    def margin_s(self) -> float:
        """How wrong the prediction has recently been: room left beyond the p90."""
        return self.learned.error_s or 0.0


def expect(learned: LearnedDurations, samples: Sequence[RunSample], *, mode: str | None,
           watts_per_core: float, default_duration: float) -> Expectation:
    """The expectation from `learned`, drawn from `samples` (runs of `mode`, or of any mode)."""
    if learned.enough and learned.duration is not None and learned.cpu is not None:
        runs = f"{learned.runs} {mode} runs" if mode else f"{learned.runs} runs"
        return _with_energy(learned.duration, learned.cpu, learned.energy,
                            f"learned from {runs}", learned, watts_per_core)
    if samples:
        duration = median(s.duration_s for s in samples)
        cpu = median(s.cpu_s for s in samples)
        energies = [s.energy_j for s in samples if s.energy_j is not None]
        energy = median(energies) if energies else None
        return _with_energy(Spread(duration, duration), Spread(cpu, cpu),
                            None if energy is None else Spread(energy, energy),
                            f"fewer than {MIN_RUNS} runs: median of {len(samples)}", learned,
                            watts_per_core)
    return _with_energy(Spread(default_duration, default_duration), Spread(0.0, 0.0), None,
                        "no history: default duration", learned, watts_per_core)


def _with_energy(duration: Spread, cpu: Spread, energy_j: Spread | None, basis: str,
                 learned: LearnedDurations, watts_per_core: float) -> Expectation:
    if energy_j is not None:
        energy = Spread(energy_j.p50 / JOULES_PER_KWH, energy_j.p90 / JOULES_PER_KWH)
        return Expectation(duration, cpu, energy, True, basis, learned)
    per_cpu_s = watts_per_core / 3600 / 1000
    return Expectation(duration, cpu, Spread(cpu.p50 * per_cpu_s, cpu.p90 * per_cpu_s), False,
                       basis, learned)
