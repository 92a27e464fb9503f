"""Median and nearest-rank percentiles: the statistics that quotes, reports and the bench share.

Written out rather than taken from `statistics`: `run --now --no-wait` reads a workflow's median
duration, and importing `statistics` is a noticeable part of that short process's start.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Iterable, Sequence


def median(values: Iterable[float]) -> float:
    """The middle value, or the mean of the two middle values: `statistics.median`'s arithmetic."""
    ordered = sorted(values)
    if not ordered:
        raise ValueError("median of no values")
    middle = len(ordered) // 2
    if len(ordered) % 2:
        return ordered[middle]
    return (ordered[middle - 1] + ordered[middle]) / 2


def nearest_rank(count: int, q: float) -> int:
    """The 1-based rank of the q-th percentile (0-100) among `count` sorted values.

    `count * q / 100` rather than `q / 100 * count`: for whole `q` the product is exact, so a
    rank that lands on a whole number is not pushed to the next one by rounding.
    """
    if count < 1:
        raise ValueError("percentile of no values")
    return max(1, math.ceil(count * q / 100))


def percentile(sorted_values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile: the smallest value with at least q% of values at or below it."""
    return sorted_values[nearest_rank(len(sorted_values), q) - 1]
