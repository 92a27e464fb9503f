"""Crontab expressions, read the way cron reads them, and the wall-clock minutes they match.

The reference is Debian's cron (Vixie cron with Debian's patches, the cron most Linux boxes
run), which the test suite checks us against through cronsim, a model of it:

- Five fields: minute 0-59, hour 0-23, day of month 1-31, month 1-12 or jan-dec, day of week
  0-7 or sun-sat (0 and 7 are both Sunday). Names are the three-letter ones, in any case, and
  only in the month and day-of-week fields; a name may stand wherever a number may.
- A field is a comma-separated list of items; an item is `*`, a value or a range `a-b`, each
  optionally followed by `/step`. A single value with a step (`5/15`, `jan/2`) runs to the end
  of the field, as Debian's and the BSDs' cron read it (cronie refuses it). A step larger than
  its range selects the range's first value only (`*/60` is minute 0).
- When the day-of-month and day-of-week fields are both restricted (neither starts with `*`),
  a day matches if either field does; otherwise it must match both.

Refused, where cron would load the line and silently never run it: a range that runs
backwards (`fri-mon`; cronie reads a range ending in Sunday as ending in 7, we ask for the 7),
and an expression whose days never occur (`0 0 30 2 *`).
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from dataclasses import dataclass
from datetime import MAXYEAR, date, datetime, time, timedelta
from functools import cached_property, lru_cache

from easyflow_cli.core.errors import shown

SHORTCUTS = {
    "@hourly": "0 * * * *",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@weekly": "0 0 * * 0",
    "@monthly": "0 0 1 * *",
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
}
_MONTHS = ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")
_WEEKDAYS = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")
# The longest each month can be, 29 February included: a day beyond it never occurs.
_LONGEST_MONTH = (31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)
# More digits than any field value or useful step: refused or capped before int() sees them.
_MAX_DIGITS = 6


@dataclass(frozen=True)
class _Field:
    label: str
    low: int
    high: int
    names: tuple[str, ...] = ()

    @property
    def allowed(self) -> str:
        names = f" or {self.names[0]}-{self.names[-1]}" if self.names else ""
        return f"{self.low}-{self.high}{names}"


_FIELDS = (
    _Field("minute", 0, 59),
    _Field("hour", 0, 23),
    _Field("day of month", 1, 31),
    _Field("month", 1, 12, _MONTHS),
    _Field("day of week", 0, 7, _WEEKDAYS),
)


@dataclass(frozen=True)
class CronExpr:
    """A parsed crontab expression: the values each field allows, weekdays with Sunday as 0."""

    minutes: tuple[int, ...]
    hours: tuple[int, ...]
    days: frozenset[int]
    months: frozenset[int]
    weekdays: frozenset[int]
    either_day: bool  # both day fields restricted: a day matches if either does
    follows_wall_clock: bool  # minute and hour both fixed: see triggers.py on DST

    def next_after(self, wall: datetime) -> datetime | None:
        """The first matching naive wall-clock minute strictly after `wall`; None past year 9999.

        Goes from allowed month to allowed month, taking each month's matching days as one bit
        mask, so an expression that fires rarely (29 February on a Sunday) costs a step per
        allowed month, never a search minute by minute or day by day.
        """
        try:
            start = wall.replace(second=0, microsecond=0) + timedelta(minutes=1)
        except OverflowError:
            return None
        today = start.date()
        if today.month in self.months and self._day_mask(today.year, today.month) >> today.day & 1:
            hit = self._time_from(start.time())
            if hit is not None:
                return datetime.combine(today, hit)
        day = self._first_day_after(today)
        return None if day is None else datetime.combine(day, time(self.hours[0], self.minutes[0]))

    def _first_day_after(self, day: date) -> date | None:
        year, month, after = day.year, day.month, day.day
        if month not in self.months:
            year, month, after = *self._next_month(year, month), 0
        while year <= MAXYEAR:
            later = self._day_mask(year, month) >> (after + 1)
            if later:
                return date(year, month, after + (later & -later).bit_length())
            year, month, after = *self._next_month(year, month), 0
        return None

    def _next_month(self, year: int, month: int) -> tuple[int, int]:
        """The allowed month after `month` of `year`."""
        order = self._month_order
        index = bisect_right(order, month)
        return (year, order[index]) if index < len(order) else (year + 1, order[0])

    def _day_mask(self, year: int, month: int) -> int:
        """The month's matching days, as bits 1-31 of an int."""
        length = 28 if month == 2 and not _is_leap(year) else _LONGEST_MONTH[month - 1]
        in_month = (1 << (length + 1)) - 2
        by_date = self._date_bits & in_month
        by_weekday = self._weekday_bits[date(year, month, 1).isoweekday() % 7] & in_month
        return by_date | by_weekday if self.either_day else by_date & by_weekday

    @cached_property
    def _month_order(self) -> tuple[int, ...]:
        return tuple(sorted(self.months))

    @cached_property
    def _date_bits(self) -> int:
        return sum(1 << day for day in self.days)

    @cached_property
    def _weekday_bits(self) -> tuple[int, ...]:
        """For each weekday the 1st can fall on (Sunday = 0), the days of the allowed weekdays."""
        return tuple(sum(1 << day for day in range(1, 32) if (first + day - 1) % 7 in self.weekdays)
                     for first in range(7))

    def _time_from(self, clock: time) -> time | None:
        """The first allowed time of day at or after `clock`, if any."""
        index = bisect_left(self.hours, clock.hour)
        if index < len(self.hours) and self.hours[index] == clock.hour:
            minute = bisect_left(self.minutes, clock.minute)
            if minute < len(self.minutes):
                return time(clock.hour, self.minutes[minute])
            index += 1
        return time(self.hours[index], self.minutes[0]) if index < len(self.hours) else None


def _is_leap(year: int) -> bool:
    return year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)


@lru_cache(maxsize=256)
def parse_cron(expr: str) -> CronExpr:
    """Parse a crontab expression or @shortcut; ValueError saying which field is wrong and why."""
    text = expr.strip()
    if text.startswith("@"):
        if text.lower() not in SHORTCUTS:
            raise ValueError(f"shortcuts are {', '.join(SHORTCUTS)}")
        text = SHORTCUTS[text.lower()]
    fields = text.split()
    if len(fields) != 5:
        raise ValueError("expected 5 fields (minute hour day-of-month month day-of-week), "
                         f"got {len(fields)}")
    minutes, hours, days, months, weekdays = (
        _field_values(field, value) for field, value in zip(_FIELDS, fields, strict=True)
    )
    either_day = not fields[2].startswith("*") and not fields[4].startswith("*")
    if not either_day and not any(day <= _LONGEST_MONTH[month - 1]
                                  for month in months for day in days):
        raise ValueError("it never matches a real date")
    return CronExpr(
        minutes=tuple(sorted(minutes)), hours=tuple(sorted(hours)), days=frozenset(days),
        months=frozenset(months), weekdays=frozenset(day % 7 for day in weekdays),
        either_day=either_day,
        follows_wall_clock=not (fields[0].startswith("*") or fields[1].startswith("*")),
    )


def _field_values(field: _Field, text: str) -> set[int]:
    values: set[int] = set()
    for item in text.split(","):
        try:
            values.update(_item_values(field, item))
        except ValueError as exc:
            raise ValueError(f"{field.label}: {exc}") from None
    return values


def _item_values(field: _Field, item: str) -> range:
    """The values of one list item: `*`, `v`, `a-b`, each with an optional `/step`."""
    if not item:
        raise ValueError("empty item in the list (two commas, or one at an end)")
    span, slash, step_text = item.partition("/")
    step = _step(step_text, item) if slash else 1
    if span == "*":
        return range(field.low, field.high + 1, step)
    first_text, dash, last_text = span.partition("-")
    first = _value(field, first_text, item)
    if not dash:
        # `v/step` runs from v to the end of the field, as `v-high/step`.
        return range(first, (field.high if slash else first) + 1, step)
    last = _value(field, last_text, item)
    if last < first:
        raise ValueError(f"range {shown(span)} runs backwards{_backwards_hint(field, last)}")
    return range(first, last + 1, step)


def _step(text: str, item: str) -> int:
    if "/" in text:
        raise ValueError(f"{shown(item)} has more than one '/'")
    if not (text.isascii() and text.isdigit()):
        raise ValueError(f"step {shown(text)} in {shown(item)} is not a whole number")
    if len(text) > _MAX_DIGITS:
        return 10**_MAX_DIGITS  # as good as any step larger than the field: its first value
    if int(text) < 1:
        raise ValueError("step must be at least 1")
    return int(text)


def _value(field: _Field, text: str, item: str) -> int:
    """One value of `field`, written as a number or (month, weekday) a three-letter name."""
    if not text:
        raise ValueError(f"{shown(item)} is missing a value")
    if "-" in text:
        raise ValueError(f"{shown(item)} has more than one '-'")
    if text.lower() in field.names:
        return field.names.index(text.lower()) + field.low
    if text.isascii() and text.isdigit():
        if len(text) <= _MAX_DIGITS and field.low <= int(text) <= field.high:
            return int(text)
        raise ValueError(f"{shown(text)} is out of range {field.allowed}")
    if text == "*":
        raise ValueError(f"'*' is the whole field and cannot be part of a range ({shown(item)})")
    kind = f"a value ({field.allowed})" if field.names else "a number"
    raise ValueError(f"{shown(text)} is not {kind}")


def _backwards_hint(field: _Field, last: int) -> str:
    return "; write 7 for a Sunday that ends a range" if field.names == _WEEKDAYS and last == 0 \
        else ""
