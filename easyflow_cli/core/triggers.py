"""Schedules (`cron`, `every`, `at`) turned into fire times.

Cron expressions are read and matched by `cron.py`, against naive wall-clock times; this
module maps wall-clock times to real instants. APScheduler's interval trigger serves `every`
as a pure function of time (its scheduler never runs); it is imported inside a function because
this module sits on the CLI's start-up path.

Cron and daylight saving time, as classic (Vixie) cron and Debian's cron do it:

- A job whose minute and hour fields are both fixed (`30 2 * * *`, `@daily`) follows the wall
  clock: it fires once for each matching local time. A time skipped by the spring-forward jump
  fires once at the end of the gap (03:00 local for a 02:30 job in Europe/Berlin), and a time
  in the repeated autumn hour fires only on its first pass.
- A job whose minute or hour field starts with `*` (`30 * * * *`, `*/15 2 * * *`) follows real
  time: it fires at every real instant whose local time matches, so both passes through a
  repeated hour count and a skipped hour has nothing to fire.

No fire time is at or before `after`, also when `after` is on the second pass through a
repeated hour (where cronsim, the model of Debian's cron the tests compare with, offers a
wall-clock job's time in that hour again, though it passed on the first pass).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta, tzinfo
from functools import cache, partial
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from easyflow_cli.core.cron import SHORTCUTS, CronExpr, parse_cron
from easyflow_cli.core.durations import format_duration, parse_duration
from easyflow_cli.core.errors import shown
from easyflow_cli.core.timeutil import TimeOutOfRange, parse_time, to_iso

KINDS = ("cron", "every", "at")
_TICK = timedelta(microseconds=1)

Step = Callable[[datetime], "datetime | None"]


def check_schedule(kind: str, expr: str, timezone: str | None) -> str:
    """Validate a schedule; return its canonical expression or raise a one-line ValueError."""
    zone = _zone(timezone)
    if kind == "cron":
        _cron(expr)
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
        cron = _cron(expr)
        step = _next_on_wall_clock if cron.follows_wall_clock else _next_in_real_time
        return partial(step, cron, zone)
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


def _cron(expr: str) -> CronExpr:
    try:
        return parse_cron(expr if isinstance(expr, str) else "")
    except ValueError as exc:
        raise ValueError(f"bad cron expression {shown(expr)}: {exc}") from None


def _walls_after(cron: CronExpr, wall: datetime) -> Iterator[datetime]:
    """The matching naive wall-clock times after `wall`, in order."""
    while (match := cron.next_after(wall)) is not None:
        yield match
        wall = match


def _next_on_wall_clock(cron: CronExpr, zone: tzinfo, after: datetime) -> datetime | None:
    """Each matching wall time once: on the first pass if repeated, at the gap's end if skipped."""
    for wall in _walls_after(cron, _wall(after, zone)):
        moment = _instant(wall, zone, fold=0) or _gap_end(wall, zone)
        if moment > after:
            return moment
    return None


def _next_in_real_time(cron: CronExpr, zone: tzinfo, after: datetime) -> datetime | None:
    """Every real instant whose wall time matches, so both passes through a repeated hour."""
    hits = [hit for fold in (0, 1) if (hit := _first_on_pass(cron, zone, after, fold))]
    return min(hits, default=None)


def _first_on_pass(cron: CronExpr, zone: tzinfo, after: datetime, fold: int) -> datetime | None:
    """The first instant after `after` whose wall time matches, reading repeated hours on `fold`.

    Outside repeated hours both folds name the same instants, so the two passes together cover
    every real instant.
    """
    # Only a naive time lacks an offset: `or` just tells the type checker so.
    offset = _wall(after, zone).replace(tzinfo=zone, fold=fold).utcoffset() or timedelta()
    for wall in _walls_after(cron, after.replace(tzinfo=None) + offset):
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
