"""The pools report's time axis: equal slices of [start, end), and how an interval falls in them.

Pure arithmetic, shared by the SQL that adds up runs lying inside one slice and the Python that
spreads the few others, so both cut time at exactly the same floating-point bounds.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Timeline:
    start: float
    end: float
    buckets: int

    @property
    def span(self) -> float:
        return max(self.end - self.start, 1e-9)

    @property
    def width(self) -> float:
        return self.span / self.buckets

    def bounds(self, index: int) -> tuple[float, float]:
        """Where slice `index` begins and ends (epoch seconds)."""
        low = self.start + index * self.width
        return low, low + self.width

    def zeros(self) -> list[float]:
        return [0.0] * self.buckets

    def spread(self, series: list[float], begin: float, finish: float) -> None:
        """Add the part of [begin, finish) that falls in each slice (seconds)."""
        width = self.width
        first = max(0, int((begin - self.start) // width))
        last = min(self.buckets - 1, int((finish - self.start) // width))
        for index in range(first, last + 1):
            low, high = self.bounds(index)
            overlap = min(finish, high) - max(begin, low)
            if overlap > 0:
                series[index] += overlap
