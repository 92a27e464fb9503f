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
