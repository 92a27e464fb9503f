"""A series of values over time: prices (a tariff) or grid carbon intensity (a forecast).

The files people already have come in several shapes; whichever it was read from, a series is
the same thing here: intervals in UTC, sorted, not overlapping, each with one value in the
series' unit. Pure: readers of the file shapes build a `Forecast`, the planner and receipts ask
it what a stretch of time costs.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum


class Unit(StrEnum):
    PER_KWH = "per_kwh"          # currency per kWh of energy used
    MULTIPLIER = "multiplier"    # times the pools' per-hour prices
    G_CO2_PER_KWH = "gCO2/kWh"   # grid carbon intensity


@dataclass(frozen=True, slots=True)
class Interval:
    start: datetime  # aware, UTC
    end: datetime
    value: float


@dataclass(frozen=True)
class Forecast:
    """Values by time, and where they came from (`source`: the shape and the file)."""

    unit: Unit
    source: str
    intervals: tuple[Interval, ...]
    _starts: tuple[float, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        ordered = tuple(sorted(self.intervals, key=lambda i: i.start))
        for before, after in zip(ordered, ordered[1:], strict=False):
            if after.start < before.end:
                raise ValueError(f"{self.source}: intervals overlap at {after.start.isoformat()}")
        object.__setattr__(self, "intervals", ordered)
        object.__setattr__(self, "_starts", tuple(i.start.timestamp() for i in ordered))

    @property
    def start(self) -> datetime | None:
        return self.intervals[0].start if self.intervals else None

    @property
    def end(self) -> datetime | None:
        """Where the series runs out; past it, planners fall back to the fixed window."""
        return self.intervals[-1].end if self.intervals else None

    def value_at(self, moment: datetime) -> float | None:
        index = bisect_right(self._starts, moment.timestamp()) - 1
        if index < 0 or moment >= self.intervals[index].end:
            return None
        return self.intervals[index].value

    def mean_over(self, start: datetime, end: datetime) -> float | None:
        """The time-weighted mean over [start, end); None unless the series covers all of it
        (a gap between intervals counts as not covered)."""
        if end <= start:
            return self.value_at(start)
        covered, weighted = 0.0, 0.0
        for piece in self._overlapping(start, end):
            seconds = (min(piece.end, end) - max(piece.start, start)).total_seconds()
            covered += seconds
            weighted += seconds * piece.value
        total = (end - start).total_seconds()
        return weighted / total if covered >= total - 1e-6 else None

    def _overlapping(self, start: datetime, end: datetime) -> Iterable[Interval]:
        index = max(bisect_right(self._starts, start.timestamp()) - 1, 0)
        for piece in self.intervals[index:]:
            if piece.start >= end:
                return
            if piece.end > start:
                yield piece

    def boundaries(self, start: datetime, end: datetime) -> list[datetime]:
        """The interval starts within [start, end): where a window's cost can change."""
        return [i.start for i in self._overlapping(start, end) if i.start >= start]


def stretch_cost(forecast: Forecast, start: datetime, end: datetime, *, energy_kwh: float,
                 worker_hour_price: float) -> float | None:
    """What running from `start` to `end` costs under `forecast`: currency for a price series
    (per kWh, or the pool's worker-hour price times the multiplier), grams of CO2 for a carbon
    one. None where the series does not cover the stretch."""
    mean = forecast.mean_over(start, end)
    if mean is None:
        return None
    if forecast.unit is Unit.MULTIPLIER:
        return mean * worker_hour_price * (end - start).total_seconds() / 3600
    return mean * energy_kwh
