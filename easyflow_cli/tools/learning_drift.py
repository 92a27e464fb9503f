"""How well learned durations follow a job that changes: a synthetic history, `BEFORE` runs at
one duration then `AFTER` at double (each with noise), fed run by run to `core.learned.learn`
as `RunQueue.recent_successes` would give it; each run predicted (p50) from those before it,
beside the plain median of the last `PLAIN_SAMPLE` runs that planning used before; each
figure the median over `SEEDS` such histories.

    python -m easyflow_cli.tools.learning_drift [--json]
"""

from __future__ import annotations

import json
import random
import sys
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta

from easyflow_cli.core.learned import MIN_RUNS, RunSample, learn
from easyflow_cli.core.stats import median

BEFORE = 40
AFTER = 40
BASE_S = 60.0
NOISE = 0.10          # standard deviation, as a share of the duration
PLAIN_SAMPLE = 20     # the old `typical_duration`: median of the last 20 successes
HISTORY_LIMIT = 50    # what `recent_successes` reads
RELEARNED_WITHIN = 0.15  # a prediction this close to the new duration counts as re-learned
SWITCH_RUNS = 10
SEEDS = 20
T0 = datetime(2026, 11, 1, tzinfo=UTC)

Predictor = Callable[[Sequence[RunSample]], float]


@dataclass(frozen=True)
class DriftFigures:
    method: str
    error_before_s: float    # median |actual - predicted p50| over the runs before the change
    error_after_s: float     # and over the runs after it
    error_switch_s: float    # over the first SWITCH_RUNS runs after it
    runs_to_relearn: float   # runs after the change until every later prediction is close
    p90_covered_after: float  # share of runs after the change that ended within the p90


def durations(seed: int = 15) -> list[float]:
    """Oldest first: BEFORE runs around BASE_S, then AFTER around twice that."""
    rng = random.Random(seed)
    levels = [BASE_S] * BEFORE + [2 * BASE_S] * AFTER
    return [max(0.001, rng.gauss(level, NOISE * level)) for level in levels]


def learned_p50(newest_first: Sequence[RunSample]) -> float:
    spread = learn(newest_first).duration
    assert spread is not None
    return spread.p50


def plain_median(newest_first: Sequence[RunSample]) -> float:
    return median(s.duration_s for s in newest_first[:PLAIN_SAMPLE])


def learned_p90(newest_first: Sequence[RunSample]) -> float:
    spread = learn(newest_first).duration
    assert spread is not None
    return spread.p90


def plain_p90(newest_first: Sequence[RunSample]) -> float:
    """The old rule had no p90: the median was the duration it planned with."""
    return plain_median(newest_first)


def measure(method: str, p50: Predictor, p90: Predictor,
            history: Sequence[float]) -> DriftFigures:
    samples = [RunSample(T0 + timedelta(hours=i), d, d, None) for i, d in enumerate(history)]
    errors: dict[bool, list[float]] = {False: [], True: []}
    close, covered = [], []
    for index in range(MIN_RUNS, len(samples)):
        before = samples[max(0, index - HISTORY_LIMIT):index][::-1]
        actual, after = samples[index].duration_s, index >= BEFORE
        predicted = p50(before)
        errors[after].append(abs(actual - predicted))
        if after:
            close.append(abs(predicted - 2 * BASE_S) <= RELEARNED_WITHIN * 2 * BASE_S)
            covered.append(actual <= p90(before))
    return DriftFigures(method, median(errors[False]), median(errors[True]),
                        median(errors[True][:SWITCH_RUNS]), _runs_until_always(close),
                        sum(covered) / len(covered))


def _runs_until_always(close: Sequence[bool]) -> int:
    """How many runs the predictions took to be close and stay so (all of them if never)."""
    for start in range(len(close)):
        if all(close[start:]):
            return start
    return len(close)


def drift_figures(seeds: int = SEEDS) -> list[DriftFigures]:
    """Per method, the median of each figure over `seeds` synthetic histories."""
    histories = [durations(seed) for seed in range(1, seeds + 1)]
    methods = [("learned (recency-weighted)", learned_p50, learned_p90),
               (f"plain median of last {PLAIN_SAMPLE}", plain_median, plain_p90)]
    return [_median_of([measure(name, p50, p90, history) for history in histories])
            for name, p50, p90 in methods]


def _median_of(runs: Sequence[DriftFigures]) -> DriftFigures:
    return DriftFigures(
        runs[0].method, *(round(median(getattr(r, field) for r in runs), 3) for field in
                          ("error_before_s", "error_after_s", "error_switch_s",
                           "runs_to_relearn", "p90_covered_after")))


def main(argv: Sequence[str]) -> None:
    figures = drift_figures()
    if "--json" in argv:
        print(json.dumps([asdict(f) for f in figures], indent=2))
        return
    print(f"{BEFORE} runs of ~{BASE_S:g}s then {AFTER} of ~{2 * BASE_S:g}s (noise {NOISE:.0%}),"
          f" median over {SEEDS} histories; error = median |actual - predicted p50|")
    for f in figures:
        print(f"{f.method:28} error before {f.error_before_s:5.2f}s, after {f.error_after_s:5.2f}s"
              f" (first {SWITCH_RUNS}: {f.error_switch_s:5.2f}s); re-learned in "
              f"{f.runs_to_relearn:g} runs; p90 covered after: {f.p90_covered_after:.0%}")


if __name__ == "__main__":
    main(sys.argv[1:])
