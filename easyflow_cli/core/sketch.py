"""A mergeable sketch of a distribution of seconds: counts in fixed log-spaced buckets.

Rolled-up history keeps queue waits and durations this way, one sketch per day and group; two
sketches add bucket by bucket, so any span of days gives its percentiles. Bucket 0 holds values
below `SMALLEST` (its representative is 0, so the error there is under a millisecond); bucket
k >= 1 holds [SMALLEST·γ^(k-1), SMALLEST·γ^k), represented by the value whose relative distance
to both ends is the same, so a percentile read off a sketch is within `RELATIVE_ERROR` of the
true value at its rank. The buckets are fixed (not adapted to the data), which is what lets
sketches of different days merge.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping

from easyflow_cli.core.stats import nearest_rank

SMALLEST = 0.001  # seconds: below this, bucket 0
GAMMA = 1.04
# (γ - 1) / (γ + 1): the largest relative distance of a bucket's value to any value in it.
RELATIVE_ERROR = (GAMMA - 1) / (GAMMA + 1)
_LOG_GAMMA = math.log(GAMMA)

Sketch = dict[int, int]  # bucket → count; buckets never seen are left out


def bucket_of(seconds: float) -> int:
    if seconds < SMALLEST:
        return 0
    return 1 + int(math.log(seconds / SMALLEST) / _LOG_GAMMA)


def bounds_of(bucket: int) -> tuple[float, float]:
    """Bounds a little wider than the bucket's on both sides (by float rounding's margin):
    every value of the bucket lies inside, and `bucket_of` tells which of them are its own."""
    if bucket <= 0:
        return -math.inf, SMALLEST * (1 + 1e-9)
    return (SMALLEST * GAMMA ** (bucket - 1) * (1 - 1e-9),
            SMALLEST * GAMMA ** bucket * (1 + 1e-9))


def surely_in(bucket: int) -> tuple[float, float]:
    """Bounds a little narrower than the bucket's on both sides (by float rounding's margin):
    every value strictly between them is of the bucket, without asking `bucket_of`."""
    if bucket <= 0:
        return -math.inf, SMALLEST * (1 - 1e-9)
    return (SMALLEST * GAMMA ** (bucket - 1) * (1 + 1e-9),
            SMALLEST * GAMMA ** bucket * (1 - 1e-9))


def value_of(bucket: int) -> float:
    """The representative of a bucket: 2·low·high / (low + high)."""
    if bucket <= 0:
        return 0.0
    low = SMALLEST * GAMMA ** (bucket - 1)
    return 2 * low * GAMMA / (1 + GAMMA)


def sketch_of(values: Iterable[float]) -> Sketch:
    sketch: Sketch = {}
    for value in values:
        bucket = bucket_of(value)
        sketch[bucket] = sketch.get(bucket, 0) + 1
    return sketch


def merge(into: Sketch, other: Mapping[int, int]) -> Sketch:
    for bucket, count in other.items():
        into[bucket] = into.get(bucket, 0) + count
    return into


def quantile(sketch: Mapping[int, int], q: float) -> float | None:
    """The nearest-rank q-th percentile (0-100), as its bucket's value; None when empty."""
    count = sum(sketch.values())
    if not count:
        return None
    rank = nearest_rank(count, q)
    seen = 0
    for bucket in sorted(sketch):
        seen += sketch[bucket]
        if seen >= rank:
            return value_of(bucket)
    raise AssertionError("rank beyond the sketch's count")  # rank <= count


def count_at_most(sketch: Mapping[int, int], seconds: float) -> int:
    """How many values lie at or under `seconds`, each read as its bucket's value."""
    return sum(count for bucket, count in sketch.items() if value_of(bucket) <= seconds)
