"""The off-peak window ("22:00-06:00", local time): is now inside it, when does it next open.

Pure functions; `now` is an aware datetime, the window is read in `tz` (default: local time).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, time, timedelta, tzinfo

_WINDOW = re.compile(r"^\s*(\d{1,2}):(\d{2})\s*-\s*(\d{1,2}):(\d{2})\s*$")


@dataclass(frozen=True)
class OffPeakWindow:
    start: time
    end: time

    def contains(self, now: datetime, tz: tzinfo | None = None) -> bool:
        local = now.astimezone(tz).time().replace(tzinfo=None)
        if self.start <= self.end:
            return self.start <= local < self.end
        return local >= self.start or local < self.end

    def next_start(self, now: datetime, tz: tzinfo | None = None) -> datetime:
        """Now if inside the window, else the next moment it opens."""
        if self.contains(now, tz):
            return now
        return _next_wall_time(now, self.start, tz)

    def text(self) -> str:
        """As it is written in the config, which `parse_window` reads back."""
        return f"{self.start:%H:%M}-{self.end:%H:%M}"


def _next_wall_time(now: datetime, wall: time, tz: tzinfo | None) -> datetime:
    local = now.astimezone(tz)
    candidate = local.replace(hour=wall.hour, minute=wall.minute, second=0, microsecond=0)
    if candidate <= local:
        candidate = (candidate.replace(tzinfo=None) + timedelta(days=1)).replace(
            tzinfo=candidate.tzinfo
        )
    # Re-resolve the wall time in the zone so a DST change between the days is respected.
    if tz is None:
        candidate = candidate.replace(tzinfo=None).astimezone()
    return candidate.astimezone(now.tzinfo)


def parse_window(text: str) -> OffPeakWindow | None:
    """`"22:00-06:00"` → a window; `""` → None (eco work runs whenever a worker is free)."""
    if not text.strip():
        return None
    found = _WINDOW.match(text)
    if not found:
        raise ValueError(f"bad off-peak window {text!r}: write it like \"22:00-06:00\" or \"\"")
    h1, m1, h2, m2 = (int(g) for g in found.groups())
    if h1 > 23 or h2 > 23 or m1 > 59 or m2 > 59:
        raise ValueError(f"bad off-peak window {text!r}: hours are 0-23, minutes 0-59")
    if (h1, m1) == (h2, m2):
        raise ValueError(f"bad off-peak window {text!r}: start and end are the same")
    return OffPeakWindow(time(h1, m1), time(h2, m2))
