"""Our cron against an independent implementation, cronsim (a model of Debian's cron), over a
generated corpus: expressions with names, ranges, steps and lists in every field and both day
fields restricted, each asked for its next fire times after a random instant, in UTC and in
zones with DST changes of an hour and of half an hour, and offsets of 30 and 45 minutes.

Where cronsim's model departs from cron's behaviour, cronsim is not asked, and a check of our
own takes its place:
- from an hour before a DST change to the end of the next local day. Within the changing hour,
  asked from the second pass through a repeated hour, cronsim offers a wall-clock job's time in
  that hour again (`30 1 * * *` at 01:30 though it fired at the first 01:30); we fire each local
  time once (see triggers.py). After the change, cronsim steps hours as 3600 real seconds, so
  after a half-hour change (Australia/Lord_Howe) a real-time job (`* 10 * * *`) starts at 10:30
  until its next match realigns it (within a day); cron reads the clock each minute and starts
  at 10:00. In these windows the fires of real-time jobs are checked minute by minute against
  cronsim's parse of the fields: every real minute whose local time matches, and no other.
- an item `a-a/step` (a range of one value with a step): cronsim reads it as `a/step`, cron as
  the value a. The corpus does not generate it; test_cron.py covers it.

`EASYFLOW_CRON_SOAK=N` multiplies the corpus by N.
"""

from __future__ import annotations

import os
import random
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from functools import cache
from zoneinfo import ZoneInfo

import pytest
from cronsim import CronSim, CronSimError

from easyflow_cli.core.cron import parse_cron
from easyflow_cli.core.triggers import next_fire_times

SOAK = int(os.environ.get("EASYFLOW_CRON_SOAK", "1"))
EXPRESSIONS = 3000 * SOAK
JUNK = 20000 * SOAK
FIRES = 20
ZONES = ("UTC", "Europe/Berlin", "America/St_Johns", "Australia/Adelaide", "Asia/Kathmandu",
         "Australia/Lord_Howe")
FIRST, LAST = datetime(2024, 1, 1, tzinfo=UTC), datetime(2029, 1, 1, tzinfo=UTC)
FAR = datetime(2450, 1, 1, tzinfo=UTC)
MONTHS = ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")
WEEKDAYS = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")
# (low, high, names, chance of a bare *)
FIELDS = ((0, 59, (), 0.05), (0, 23, (), 0.2), (1, 31, (), 0.5), (1, 12, MONTHS, 0.6),
          (0, 7, WEEKDAYS, 0.6))
STEPS = (2, 3, 5, 7, 13, 15, 24, 40, 60, 100)


# --- the corpus ------------------------------------------------------------------------------


def value(rng: random.Random, number: int, low: int, names: tuple[str, ...]) -> str:
    if number - low < len(names) and rng.random() < 0.5:
        name = names[number - low]
        return rng.choice((name, name.upper(), name.title()))
    return str(number)


def item(rng: random.Random, low: int, high: int, names: tuple[str, ...]) -> str:
    step = f"/{rng.choice(STEPS)}" if rng.random() < 0.4 else ""
    shape = rng.random()
    if shape < 0.25:
        return "*" + step
    if shape < 0.5:
        return value(rng, rng.randint(low, high), low, names) + step
    first = rng.randint(low, high - 1)
    last = rng.randint(first + 1, high)
    return f"{value(rng, first, low, names)}-{value(rng, last, low, names)}{step}"


def expression(rng: random.Random) -> str:
    fields = []
    for low, high, names, bare in FIELDS:
        items = [item(rng, low, high, names) for _ in range(rng.choice((1, 1, 1, 2, 3)))]
        fields.append("*" if rng.random() < bare else ",".join(items))
    return " ".join(fields)


@cache
def dst_changes(zone: str) -> tuple[datetime, ...]:
    """The instants in [FIRST, LAST) at which the zone's offset changes."""
    tz, changes, moment = ZoneInfo(zone), [], FIRST
    while moment < LAST:
        following = moment + timedelta(hours=1)
        if following.astimezone(tz).utcoffset() != moment.astimezone(tz).utcoffset():
            changes.append(first_minute_of(tz, moment, following))
        moment = following
    return tuple(changes)


def first_minute_of(tz: ZoneInfo, before: datetime, after: datetime) -> datetime:
    offset = before.astimezone(tz).utcoffset()
    while after - before > timedelta(minutes=1):
        middle = before + (after - before) / 2
        before, after = (middle, after) if middle.astimezone(tz).utcoffset() == offset \
            else (before, middle)
    return after


def instant(rng: random.Random, zone: str) -> datetime:
    """A random instant, most often in the days before a DST change where the zone has one;
    in UTC, half of them in the centuries ahead (2100 and 2200 have no 29 February)."""
    changes = dst_changes(zone)
    if changes and rng.random() < 0.7:
        return rng.choice(changes) - timedelta(seconds=rng.randrange(-3 * 3600, 2 * 86400))
    last = FAR if zone == "UTC" and rng.random() < 0.5 else LAST
    return FIRST + timedelta(seconds=rng.randrange(int((last - FIRST).total_seconds())))


def samples(seed: int, count: int) -> Iterator[tuple[str, str, datetime]]:
    rng = random.Random(seed)
    for index in range(count):
        zone = ZONES[index % len(ZONES)]
        yield expression(rng), zone, instant(rng, zone)


# --- what cronsim says, and where it is not asked --------------------------------------------


def cronsim_fires(expr: str, zone: str, after: datetime, count: int) -> list[datetime]:
    fires = CronSim(expr, after.astimezone(ZoneInfo(zone)))
    return [next(fires).astimezone(UTC) for _ in range(count)]


@cache
def window(zone: str, change: datetime) -> tuple[datetime, datetime]:
    """From an hour before a DST change to the end of the next local day."""
    tz = ZoneInfo(zone)
    day_after = change.astimezone(tz).date() + timedelta(days=2)
    end = datetime(day_after.year, day_after.month, day_after.day, tzinfo=tz)
    return change - timedelta(hours=1), end.astimezone(UTC)


def near_a_change(zone: str, moment: datetime) -> datetime | None:
    """The DST change whose window holds `moment`, if any."""
    for change in dst_changes(zone):
        start, end = window(zone, change)
        if start <= moment < end:
            return change
    return None


def real_minutes_matching(expr: str, zone: str, start: datetime, end: datetime) -> list[datetime]:
    """Every real minute in (start, end] whose local time matches `expr`, by cronsim's fields."""
    sim, tz = CronSim(expr, FIRST), ZoneInfo(zone)
    moment = start.replace(second=0, microsecond=0) + timedelta(minutes=1)
    matches = []
    while moment <= end:
        local = moment.astimezone(tz)
        if (local.minute in sim.minutes and local.hour in sim.hours
                and local.month in sim.months and sim.match_day(local.date())):
            matches.append(moment)
        moment += timedelta(minutes=1)
    return matches


def follows_real_time(expr: str) -> bool:
    minute, hour = expr.split()[:2]
    return minute.startswith("*") or hour.startswith("*")


def compare(expr: str, zone: str, after: datetime) -> int:
    """Assert that our fire times agree with cronsim's; return how many were compared."""
    if not cronsim_accepts(expr):  # a day that never comes, such as 30 February
        assert not ours_accepts(expr), expr
        return 0
    ours = next_fire_times("cron", expr, zone, after, after, FIRES)
    theirs = cronsim_fires(expr, zone, after, FIRES)
    horizon = min(ours[-1], theirs[-1])
    shown = {moment for moment in ours if moment <= horizon and not near_a_change(zone, moment)}
    expected = [m for m in theirs if m > after and m <= horizon and not near_a_change(zone, m)]
    assert sorted(shown) == expected, (expr, zone, after)
    return len(expected) + check_windows(expr, zone, after, ours)


def check_windows(expr: str, zone: str, after: datetime, ours: list[datetime]) -> int:
    """Real-time fires near a DST change, against a minute-by-minute scan."""
    if not follows_real_time(expr):
        return 0
    checked = 0
    for change in sorted({change for moment in ours if (change := near_a_change(zone, moment))}):
        inside = [moment for moment in ours if near_a_change(zone, moment) == change]
        start = max(after, window(zone, change)[0] - timedelta(minutes=1))
        assert inside == real_minutes_matching(expr, zone, start, inside[-1]), (expr, zone, after)
        checked += len(inside)
    return checked


# --- the tests -------------------------------------------------------------------------------


def test_fire_times_agree_with_cronsim_over_a_generated_corpus():
    compared = sum(compare(*sample) for sample in samples(seed=12, count=EXPRESSIONS))
    assert compared > EXPRESSIONS * FIRES * 0.9  # the exclusions above stay exceptions


def test_the_corpus_reaches_every_construct():
    corpus = [expr for expr, _, _ in samples(seed=12, count=EXPRESSIONS)]
    for construct in ("/", "-", ",", "JAN", "Sun", "mar", "7"):
        assert any(construct in expr for expr in corpus), construct
    either_day = [expr for expr in corpus if "*" not in expr.split()[2][0] + expr.split()[4][0]]
    assert len(either_day) > EXPRESSIONS / 10
    assert sum(not follows_real_time(expr) for expr in corpus) > EXPRESSIONS / 20


def test_the_corpus_crosses_dst_changes_in_every_zone_that_has_them():
    crossed = {zone for expr, zone, after in samples(seed=12, count=EXPRESSIONS)
               if near_a_change(zone, after + timedelta(hours=6))}
    assert crossed == set(ZONES) - {"UTC", "Asia/Kathmandu"}


JUNK_TOKENS = ("0", "1", "5", "7", "12", "13", "24", "31", "32", "59", "60", "*", "/", "-", ",",
               "jan", "FEB", "Sun", "mon", "sat", "dec", "x", "$", "")


@pytest.mark.parametrize("seed", [1, 2])
def test_what_cronsim_refuses_we_refuse_and_only_that(seed):
    rng = random.Random(seed)
    accepted = 0
    for _ in range(JUNK // 2):
        fields = ["*"] * 5
        fields[rng.randrange(5)] = "".join(rng.choice(JUNK_TOKENS)
                                           for _ in range(rng.randint(1, 5))) or "*"
        if rng.random() < 0.3:
            fields[2] = rng.choice(("1", "15", "30", "31"))
        expr = " ".join(fields)
        theirs = cronsim_accepts(expr)
        assert ours_accepts(expr) == theirs, expr
        accepted += theirs
    assert accepted > JUNK / 20  # not all junk: the corpus tells valid from invalid


def cronsim_accepts(expr: str) -> bool:
    try:
        CronSim(expr, FIRST)
    except CronSimError:
        return False
    return True


def ours_accepts(expr: str) -> bool:
    try:
        parse_cron(expr)
    except ValueError:
        return False
    return True
