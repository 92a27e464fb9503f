"""The daemon's one source of time, passed in so tests can drive it.

Two clocks, for two purposes: `now()` stamps what happened (an aware UTC time, stored and
shown), `monotonic()` measures durations, timeouts and sleeps, which a wall-clock jump (NTP,
a suspended laptop, a user's `date -s`) must not stretch or cut short.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Protocol


class Clock(Protocol):
    def now(self) -> datetime:
        """The wall-clock time, aware, in UTC: for stamps and for what is due by the calendar."""
        ...

    def monotonic(self) -> float:
        """Seconds on a clock that only moves forward: for durations, timeouts and sleeps."""
        ...


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(UTC)

    def monotonic(self) -> float:
        return time.monotonic()


# Smaller differences are left alone: two readings of the pair are not taken at one instant,
# and NTP slews the clock by far less than this between two wake-ups.
STEP_TOLERANCE_S = 1.0


class StepWatch:
    """Notices the wall clock being stepped (NTP, `date -s`) against the monotonic clock.

    The monotonic clock stands still while the machine is suspended: to this watch, a suspend
    looks like a forward step of its length."""

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self.offset = self._offset()

    def step(self) -> float:
        """Seconds the wall clock was stepped since the last look (0.0 when it was not)."""
        offset = self._offset()
        step, self.offset = offset - self.offset, offset
        return step if abs(step) >= STEP_TOLERANCE_S else 0.0

    def _offset(self) -> float:
        return self.clock.now().timestamp() - self.clock.monotonic()
