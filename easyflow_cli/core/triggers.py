"""Schedules (`cron`, `every`, `at`) turned into fire times.

APScheduler's trigger classes serve only as pure functions of time; its scheduler never runs.
It is imported inside functions because this module sits on the CLI's start-up path.

Cron and daylight saving time, as classic (Vixie) cron does it:

- A job whose minute and hour fields are both fixed (`30 2 * * *`, `@daily`) follows the wall
  clock: it fires once for each matching local time. A time skipped by the spring-forward jump
  fires once at the end of the gap (03:00 local for a 02:30 job in Europe/Berlin), and a time
  in the repeated autumn hour fires only on its first pass.
- A job whose minute or hour field starts with `*` (`30 * * * *`, `*/15 2 * * *`) follows real
  time: it fires at every real instant whose local time matches, so both passes through a
  repeated hour count and a skipped hour has nothing to fire.

APScheduler 3.11 with a DST zone gets these edges wrong (a skipped 02:30 fires at 03:30, a
repeated 02:30 fires twice for a daily job and then keeps returning the same instant), so cron
fields are matched against naive wall-clock times with a UTC trigger, a calendar without DST,
and the mapping from wall clock to real instants is done here.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta, tzinfo
from functools import cache, partial
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from easyflow_cli.core.durations import format_duration, parse_duration
from easyflow_cli.core.errors import shown
from easyflow_cli.core.timeutil import TimeOutOfRange, parse_time, to_iso

if TYPE_CHECKING:
    from apscheduler.triggers.cron import CronTrigger

KINDS = ("cron", "every", "at")
SHORTCUTS = {
    "@hourly": "0 * * * *",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@weekly": "0 0 * * 0",
    "@monthly": "0 0 1 * *",
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
}
_FIELDS = (
    ("minute", "minute", "0-59"),
    ("hour", "hour", "0-23"),
    ("day", "day of month", "1-31"),
    ("month", "month", "1-12 or jan-dec"),
    ("day_of_week", "day of week", "0-7 or sun-sat"),
)
_WEEKDAYS = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")
_TICK = timedelta(microseconds=1)

Step = Callable[[datetime], "datetime | None"]
# Cron triggers that match naive wall-clock times (a crontab line may need two: see _wall_cron).
WallTriggers = list["CronTrigger"]


def check_schedule(kind: str, expr: str, timezone: str | None) -> str:
    """Validate a schedule; return its canonical expression or raise a one-line ValueError."""
    zone = _zone(timezone)
    if kind == "cron":
        _wall_cron(expr)
        text = expr.strip().lower()
        return text if text in SHORTCUTS else " ".join(expr.split())
    if kind == "every":
        return format_duration(parse_duration(expr))
    if kind == "at":
        return to_iso(_parse_at(expr, zone))
    raise ValueError(f"unknown schedule kind {kind!r}: use one of {', '.join(KINDS)}")


def next_fire_after(
    kind: str, expr: str, timezone: str | None, after: datetime, anchor: datetime
) -> datetime | None:
    """The first fire time strictly after `after`, in UTC; None when the schedule has ended.

    `anchor` is when the schedule was created: `every` counts its intervals from it.
    """
    return _stepper(kind, expr, timezone, anchor)(_utc(after))


def next_fire_times(
    kind: str, expr: str, timezone: str | None, after: datetime, anchor: datetime, count: int
) -> list[datetime]:
    """The next `count` fire times strictly after `after`, in UTC; fewer if the schedule ends."""
    step = _stepper(kind, expr, timezone, anchor)
    times: list[datetime] = []
    moment = _utc(after)
    while len(times) < count and (following := step(moment)) is not None:
        times.append(moment := following)
    return times


def _stepper(kind: str, expr: str, timezone: str | None, anchor: datetime) -> Step:
    """A function from an instant to the schedule's next fire time strictly after it."""
    zone = _zone(timezone)
    if kind == "cron":
        triggers, follows_wall_clock = _wall_cron(expr)
        step = _next_on_wall_clock if follows_wall_clock else _next_in_real_time
        return partial(step, triggers, zone)
    if kind == "every":
        return partial(_next_every, parse_duration(expr), _utc(anchor))
    if kind == "at":
        moment = _parse_at(expr, zone)
        return lambda after: moment if moment > after else None
    raise ValueError(f"unknown schedule kind {kind!r}: use one of {', '.join(KINDS)}")


def _next_every(seconds: float, anchor: datetime, after: datetime) -> datetime:
    from apscheduler.triggers.interval import IntervalTrigger

    # Starting one interval after the anchor gives anchor + k * interval for k >= 1; the
    # trigger adds POSIX timestamps, so a DST change never stretches an interval.
    start = anchor + timedelta(seconds=seconds)
    trigger = IntervalTrigger(seconds=seconds, start_date=start, timezone=UTC)
    return trigger.get_next_fire_time(None, after + _TICK).astimezone(UTC)


def _parse_at(expr: str, zone: tzinfo) -> datetime:
    try:
        return parse_time(expr, zone)
    except TimeOutOfRange as exc:
        raise ValueError(f"bad time {shown(expr)}: {exc}") from None
    except (ValueError, TypeError, AttributeError):
        raise ValueError(
            f"bad time {shown(expr)}: write it like '2026-12-01T09:00' or '2026-12-01T09:00+02:00'"
        ) from None


# --- cron ------------------------------------------------------------------------------------


def _wall_cron(expr: str) -> tuple[WallTriggers, bool]:
    """Triggers matching naive wall-clock times, and whether the job follows the wall clock."""
    from apscheduler.triggers.cron import CronTrigger

    fields = _cron_fields(expr)
    day, weekday = fields[2], fields[4]
    # Crontab fires when either day field matches if both are restricted; APScheduler ANDs them.
    either = not day.startswith("*") and not weekday.startswith("*")
    variants = [(day, "*"), ("*", weekday)] if either else [(day, weekday)]
    triggers = [
        CronTrigger(
            minute=fields[0], hour=fields[1], day=d, month=fields[3],
            day_of_week=_weekdays(w), timezone=UTC,
        )
        for d, w in variants
    ]
    if _next_wall(triggers, datetime(2000, 1, 1)) is None:
        raise ValueError(f"bad cron expression {shown(expr)}: it never matches a real date")
    return triggers, not (fields[0].startswith("*") or fields[1].startswith("*"))


def _cron_fields(expr: str) -> list[str]:
    """The five crontab fields of `expr` (shortcuts expanded), each checked on its own."""
    from apscheduler.triggers.cron import CronTrigger

    text = expr.strip() if isinstance(expr, str) else ""
    if text.startswith("@") and text.lower() not in SHORTCUTS:
        raise ValueError(f"bad cron expression {shown(expr)}: shortcuts are {', '.join(SHORTCUTS)}")
    fields = SHORTCUTS.get(text.lower(), text).split()
    if len(fields) != 5:
        raise ValueError(
            f"bad cron expression {shown(expr)}: expected 5 fields "
            f"(minute hour day-of-month month day-of-week), got {len(fields)}"
        )
    for (name, label, allowed), value in zip(_FIELDS, fields, strict=True):
        try:
            if name == "day_of_week":
                value = _weekdays(value)
            CronTrigger(**{name: value}, timezone=UTC)
        except ValueError:
            raise ValueError(
                f"bad cron expression {shown(expr)}: {label} must be {allowed}") from None
    return fields


def _weekdays(field: str) -> str:
    """Crontab counts weekdays from Sunday = 0 (7 is Sunday too); APScheduler 3 from Monday = 0.

    So numbers are turned into an explicit list of day names, which both read the same way.
    """
    if field == "*":
        return field
    days: set[int] = set()
    for item in field.lower().split(","):
        span, _, step = item.partition("/")
        first, dash, last = span.partition("-")
        if dash and not last:
            raise ValueError(f"open day-of-week range {shown(field)}")
        low = 0 if span == "*" else _weekday(first)
        high = 7 if span == "*" or (step and not last) else _weekday(last or first)
        days.update(day % 7 for day in range(low, high + 1, int(step or 1)))
    if not days:
        raise ValueError(f"empty day-of-week range {field!r}")
    return ",".join(_WEEKDAYS[day] for day in sorted(days))


def _weekday(text: str) -> int:
    if text in _WEEKDAYS:
        return _WEEKDAYS.index(text)
    if text.isdigit() and int(text) <= 7:
        return int(text)
    raise ValueError(f"bad weekday {text!r}")


def _next_wall(triggers: WallTriggers, wall: datetime) -> datetime | None:
    """The first matching naive wall-clock time strictly after `wall`."""
    now = wall.replace(tzinfo=UTC) + _TICK
    hits = [hit for trigger in triggers if (hit := trigger.get_next_fire_time(None, now))]
    return min(hits).replace(tzinfo=None) if hits else None


def _walls_after(triggers: WallTriggers, wall: datetime) -> Iterator[datetime]:
    """The matching naive wall-clock times after `wall`, in order."""
    while (match := _next_wall(triggers, wall)) is not None:
        yield match
        wall = match


def _next_on_wall_clock(triggers: WallTriggers, zone: tzinfo, after: datetime) -> datetime | None:
    """Each matching wall time once: on the first pass if repeated, at the gap's end if skipped."""
    for wall in _walls_after(triggers, _wall(after, zone)):
        moment = _instant(wall, zone, fold=0) or _gap_end(wall, zone)
        if moment > after:
            return moment
    return None


def _next_in_real_time(triggers: WallTriggers, zone: tzinfo, after: datetime) -> datetime | None:
    """Every real instant whose wall time matches, so both passes through a repeated hour."""
    hits = [hit for fold in (0, 1) if (hit := _first_on_pass(triggers, zone, after, fold))]
    return min(hits, default=None)


def _first_on_pass(triggers: WallTriggers, zone: tzinfo, after: datetime,
                   fold: int) -> datetime | None:
    """The first instant after `after` whose wall time matches, reading repeated hours on `fold`.

    Outside repeated hours both folds name the same instants, so the two passes together cover
    every real instant.
    """
    # Only a naive time lacks an offset: `or` just tells the type checker so.
    offset = _wall(after, zone).replace(tzinfo=zone, fold=fold).utcoffset() or timedelta()
    for wall in _walls_after(triggers, after.replace(tzinfo=None) + offset):
        moment = _instant(wall, zone, fold)
        if moment is not None and moment > after:
            return moment
    return None


def _wall(moment: datetime, zone: tzinfo) -> datetime:
    """The naive local time a clock in `zone` shows at `moment`."""
    return moment.astimezone(UTC).astimezone(zone).replace(tzinfo=None, fold=0)


def _instant(wall: datetime, zone: tzinfo, fold: int) -> datetime | None:
    """The UTC instant at which the clock shows `wall` (on pass `fold`); None if it never does."""
    moment = wall.replace(tzinfo=zone, fold=fold)
    return moment.astimezone(UTC) if _wall(moment, zone) == wall else None


def _gap_end(wall: datetime, zone: tzinfo) -> datetime:
    """The first existing whole minute after a skipped wall time (DST jumps are whole minutes)."""
    while (moment := _instant(wall, zone, fold=0)) is None:
        wall += timedelta(minutes=1)
    return moment


# --- time zones and instants -----------------------------------------------------------------


def _zone(name: str | None) -> tzinfo:
    """The IANA zone `name`, or the machine's zone (with its DST rules) when None."""
    if name is None:
        return _local_zone()
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, TypeError, OSError):
        # OSError: the name is a directory of the zone database, or too long for a file name.
        raise ValueError(f"unknown timezone {shown(name)}{_zone_hint(name)}") from None


def check_timezone(name: str | None) -> None:
    """ValueError with a one-line message unless `name` is None or a known IANA zone."""
    _zone(name)


def _local_zone() -> tzinfo:
    import tzlocal

    # A fixed offset such as datetime.now().astimezone().tzinfo would lose the DST rules.
    return tzlocal.get_localzone()


def _zone_hint(name: object) -> str:
    import difflib

    by_lower = _zones_by_lower_name()
    close = difflib.get_close_matches(str(name).lower(), by_lower, n=1, cutoff=0.8)
    if close:
        return f"; did you mean {by_lower[close[0]]!r}?"
    return "; use an IANA name like 'Europe/Berlin' or 'UTC'"


@cache
def _zones_by_lower_name() -> dict[str, str]:
    from zoneinfo import available_timezones

    # available_timezones() walks the zone database on disk every time it is called.
    return {zone.lower(): zone for zone in available_timezones()}


def _utc(moment: datetime) -> datetime:
    if moment.tzinfo is None:
        raise ValueError("naive datetime given where an aware one is required")
    return moment.astimezone(UTC)
