"""Fire times for cron / every / at schedules, with the DST promises made in triggers.py."""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from easyflow_cli.core import triggers
from easyflow_cli.core.triggers import check_schedule, next_fire_after, next_fire_times

BERLIN = ZoneInfo("Europe/Berlin")
NEW_YORK = ZoneInfo("America/New_York")
ANCHOR = datetime(2026, 1, 1, tzinfo=UTC)


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def cron_times(expr: str, tz: str | None, after: datetime, count: int) -> list[datetime]:
    return next_fire_times("cron", expr, tz, after, ANCHOR, count)


def test_import_does_not_load_apscheduler():
    code = "import sys, easyflow_cli.core.triggers; print('apscheduler' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.stdout.strip() == "False", result.stderr


# --- check_schedule --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "expr", "tz", "canonical"),
    [
        ("cron", "  0   2 * *  *\n", "Europe/Berlin", "0 2 * * *"),
        ("cron", " @Daily ", None, "@daily"),
        ("every", " 90m ", None, "1h30m"),
        ("every", "1h 30m", None, "1h30m"),
        ("every", "30s", "UTC", "30s"),
        ("at", "2026-12-01T09:00", "Europe/Berlin", "2026-12-01T08:00:00.000000Z"),
        ("at", "2026-12-01 09:00", "America/New_York", "2026-12-01T14:00:00.000000Z"),
        ("at", "2026-12-01T09:00+02:00", "America/New_York", "2026-12-01T07:00:00.000000Z"),
        ("at", "2026-12-01T09:00Z", None, "2026-12-01T09:00:00.000000Z"),
    ],
)
def test_check_schedule_returns_canonical_text(kind, expr, tz, canonical):
    assert check_schedule(kind, expr, tz) == canonical


@pytest.mark.parametrize(
    ("expr", "message"),
    [
        ("61 * * * *", "bad cron expression '61 * * * *': minute: '61' is out of range 0-59"),
        ("0 24 * * *", "bad cron expression '0 24 * * *': hour: '24' is out of range 0-23"),
        ("0 0 32 * *", "bad cron expression '0 0 32 * *': day of month: '32' is out of range"
         " 1-31"),
        ("0 0 * 13 *", "bad cron expression '0 0 * 13 *': month: '13' is out of range 1-12 or"
         " jan-dec"),
        ("0 0 * * 8", "bad cron expression '0 0 * * 8': day of week: '8' is out of range 0-7"
         " or sun-sat"),
        ("0 0 * * fri-mon", "bad cron expression '0 0 * * fri-mon': day of week: range"
         " 'fri-mon' runs backwards"),
        ("*/0 * * * *", "bad cron expression '*/0 * * * *': minute: step must be at least 1"),
        ("x * * * *", "bad cron expression 'x * * * *': minute: 'x' is not a number"),
        ("* * *", "bad cron expression '* * *': expected 5 fields"),
        ("0 0 * * * *", "bad cron expression '0 0 * * * *': expected 5 fields"),
        ("", "bad cron expression '': expected 5 fields"),
        ("@hourl", "bad cron expression '@hourl': shortcuts are @hourly, @daily"),
        ("0 0 30 2 *", "bad cron expression '0 0 30 2 *': it never matches a real date"),
    ],
)
def test_bad_cron_expressions_say_what_is_wrong(expr, message):
    with pytest.raises(ValueError) as info:
        check_schedule("cron", expr, "UTC")
    assert str(info.value).startswith(message)
    assert "\n" not in str(info.value)


def test_misspelt_timezone_suggests_the_real_one():
    with pytest.raises(ValueError) as info:
        check_schedule("cron", "0 2 * * *", "Europe/Berln")
    assert str(info.value) == "unknown timezone 'Europe/Berln'; did you mean 'Europe/Berlin'?"


def test_wrong_case_timezone_suggests_the_real_one():
    with pytest.raises(ValueError, match="did you mean 'America/New_York'"):
        check_schedule("every", "5m", "america/new_york")


@pytest.mark.parametrize("tz", ["Mars/Olympus_Mons", "", "../etc/passwd"])
def test_unknown_timezone_without_close_match(tz):
    with pytest.raises(ValueError) as info:
        check_schedule("cron", "0 2 * * *", tz)
    assert str(info.value) == (
        f"unknown timezone {tz!r}; use an IANA name like 'Europe/Berlin' or 'UTC'"
    )


def test_bad_timezone_is_reported_by_next_fire_after_too():
    with pytest.raises(ValueError, match="unknown timezone 'Europe/Berln'"):
        next_fire_after("cron", "0 2 * * *", "Europe/Berln", utc(2026, 1, 1), ANCHOR)


@pytest.mark.parametrize(
    ("kind", "expr", "message"),
    [
        ("every", "5 minutes", "bad duration '5 minutes'"),
        ("every", "0s", "bad duration '0s': must be longer than zero"),
        ("at", "tomorrow", "bad time 'tomorrow': write it like '2026-12-01T09:00'"),
        ("hourly", "1h", "unknown schedule kind 'hourly': use one of cron, every, at"),
    ],
)
def test_other_bad_schedules(kind, expr, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(")):
        check_schedule(kind, expr, None)


# --- cron basics -----------------------------------------------------------------------------


def test_cron_every_quarter_hour():
    assert cron_times("*/15 * * * *", "UTC", utc(2026, 5, 4, 10, 7), 3) == [
        utc(2026, 5, 4, 10, 15), utc(2026, 5, 4, 10, 30), utc(2026, 5, 4, 10, 45),
    ]


def test_cron_fires_strictly_after_the_given_time():
    assert next_fire_after("cron", "0 2 * * *", "UTC", utc(2026, 5, 4, 2), ANCHOR) == utc(
        2026, 5, 5, 2
    )
    assert next_fire_after(
        "cron", "0 2 * * *", "UTC", utc(2026, 5, 4, 1, 59, 59, 999999), ANCHOR
    ) == utc(2026, 5, 4, 2)


def test_cron_in_a_timezone_returns_utc():
    fire = next_fire_after("cron", "0 9 * * *", "Asia/Tokyo", utc(2026, 5, 3, 12), ANCHOR)
    assert fire == utc(2026, 5, 4, 0)
    assert fire.tzinfo is UTC


def test_cron_weekday_numbers_are_crontab_numbers():
    # 2026-05-03 is a Sunday. Crontab's 0 and 7 are Sunday, 1-5 Monday to Friday.
    start = utc(2026, 5, 2, 12)
    assert cron_times("0 0 * * 0", "UTC", start, 1) == [utc(2026, 5, 3)]
    assert cron_times("0 0 * * 7", "UTC", start, 1) == [utc(2026, 5, 3)]
    weekdays = cron_times("0 9 * * 1-5", "UTC", start, 5)
    assert [d.strftime("%a") for d in weekdays] == ["Mon", "Tue", "Wed", "Thu", "Fri"]
    assert cron_times("0 9 * * MON-FRI", "UTC", start, 5) == weekdays
    assert [d.strftime("%a") for d in cron_times("0 0 * * */2", "UTC", start, 4)] == [
        "Sun", "Tue", "Thu", "Sat",
    ]


def test_cron_restricted_day_and_weekday_fire_on_either():
    # As in crontab(5): both restricted means "the 1st of the month, or any Friday".
    fires = cron_times("0 0 1 * 5", "UTC", utc(2026, 5, 25), 4)
    assert fires == [utc(2026, 5, 29), utc(2026, 6, 1), utc(2026, 6, 5), utc(2026, 6, 12)]


@pytest.mark.parametrize(
    ("shortcut", "expected"),
    [
        ("@hourly", utc(2026, 5, 6, 11)),
        ("@daily", utc(2026, 5, 7)),
        ("@midnight", utc(2026, 5, 7)),
        ("@weekly", utc(2026, 5, 10)),  # the next Sunday
        ("@monthly", utc(2026, 6, 1)),
        ("@yearly", utc(2027, 1, 1)),
        ("@annually", utc(2027, 1, 1)),
    ],
)
def test_cron_shortcuts(shortcut, expected):
    # 2026-05-06 is a Wednesday.
    assert next_fire_after("cron", shortcut, "UTC", utc(2026, 5, 6, 10, 15), ANCHOR) == expected


def test_cron_without_timezone_uses_the_machine_zone(monkeypatch):
    monkeypatch.setattr(triggers, "_local_zone", lambda: BERLIN)
    assert next_fire_after("cron", "0 9 * * *", None, utc(2026, 7, 1), ANCHOR) == utc(
        2026, 7, 1, 7
    )


@pytest.fixture
def machine_zone(monkeypatch):
    import tzlocal

    def set_zone(name: str) -> None:
        monkeypatch.setenv("TZ", name)
        tzlocal.reload_localzone()

    yield set_zone
    monkeypatch.undo()
    tzlocal.reload_localzone()


def test_machine_zone_is_a_zone_with_dst_rules(machine_zone):
    machine_zone("Europe/Berlin")
    assert next_fire_times("cron", "30 2 * * *", None, utc(2026, 3, 28, 12), ANCHOR, 2) == [
        utc(2026, 3, 29, 1, 0), utc(2026, 3, 30, 0, 30),
    ]


# --- cron across DST -------------------------------------------------------------------------


def local_days(fires: list[datetime], zone: ZoneInfo) -> list:
    return [f.astimezone(zone).date() for f in fires]


def week_of_daily(expr: str, zone: ZoneInfo, first_day: datetime) -> list[datetime]:
    start = first_day.replace(tzinfo=zone).astimezone(UTC)
    fires = cron_times(expr, zone.key, start, 7)
    days = local_days(fires, zone)
    assert days == [first_day.date() + timedelta(days=n) for n in range(7)]
    return fires


def test_daily_berlin_spring_forward_fires_at_the_end_of_the_gap():
    # 2026-03-29 02:00 CET jumps to 03:00 CEST; 02:30 does not exist that day.
    fires = week_of_daily("30 2 * * *", BERLIN, datetime(2026, 3, 26))
    assert fires == [
        utc(2026, 3, 26, 1, 30), utc(2026, 3, 27, 1, 30), utc(2026, 3, 28, 1, 30),
        utc(2026, 3, 29, 1, 0),  # 03:00 CEST
        utc(2026, 3, 30, 0, 30), utc(2026, 3, 31, 0, 30), utc(2026, 4, 1, 0, 30),
    ]


def test_daily_berlin_fall_back_fires_once_on_the_first_pass():
    # 2026-10-25 03:00 CEST goes back to 02:00 CET; 02:30 happens twice that day.
    fires = week_of_daily("30 2 * * *", BERLIN, datetime(2026, 10, 22))
    assert fires == [
        utc(2026, 10, 22, 0, 30), utc(2026, 10, 23, 0, 30), utc(2026, 10, 24, 0, 30),
        utc(2026, 10, 25, 0, 30),  # 02:30 CEST, not again at 02:30 CET
        utc(2026, 10, 26, 1, 30), utc(2026, 10, 27, 1, 30), utc(2026, 10, 28, 1, 30),
    ]


def test_daily_new_york_spring_forward_fires_at_the_end_of_the_gap():
    # 2026-03-08 02:00 EST jumps to 03:00 EDT.
    fires = week_of_daily("30 2 * * *", NEW_YORK, datetime(2026, 3, 5))
    assert fires == [
        utc(2026, 3, 5, 7, 30), utc(2026, 3, 6, 7, 30), utc(2026, 3, 7, 7, 30),
        utc(2026, 3, 8, 7, 0),  # 03:00 EDT
        utc(2026, 3, 9, 6, 30), utc(2026, 3, 10, 6, 30), utc(2026, 3, 11, 6, 30),
    ]


def test_daily_new_york_fall_back_fires_once_on_the_first_pass():
    # 2026-11-01 02:00 EDT goes back to 01:00 EST; 01:30 happens twice that day.
    fires = week_of_daily("30 1 * * *", NEW_YORK, datetime(2026, 10, 29))
    assert fires == [
        utc(2026, 10, 29, 5, 30), utc(2026, 10, 30, 5, 30), utc(2026, 10, 31, 5, 30),
        utc(2026, 11, 1, 5, 30),  # 01:30 EDT, not again at 01:30 EST
        utc(2026, 11, 2, 6, 30), utc(2026, 11, 3, 6, 30), utc(2026, 11, 4, 6, 30),
    ]


def test_daily_from_inside_the_repeated_hour_waits_for_the_next_day():
    after = datetime(2026, 10, 25, 2, 10, tzinfo=BERLIN, fold=1)  # 02:10 CET, second pass
    assert next_fire_after("cron", "30 2 * * *", "Europe/Berlin", after, ANCHOR) == utc(
        2026, 10, 26, 1, 30
    )


def test_several_skipped_times_fire_once_at_the_end_of_the_gap():
    fires = cron_times("0,30 2 * * *", "Europe/Berlin", utc(2026, 3, 28, 12), 3)
    assert fires == [utc(2026, 3, 29, 1, 0), utc(2026, 3, 30, 0, 0), utc(2026, 3, 30, 0, 30)]


@pytest.mark.parametrize(
    ("zone", "start"),
    [
        (BERLIN, utc(2026, 3, 28, 22)), (BERLIN, utc(2026, 10, 24, 22)),
        (NEW_YORK, utc(2026, 3, 8, 4)), (NEW_YORK, utc(2026, 11, 1, 3)),
    ],
)
def test_hourly_fires_every_real_hour_across_dst(zone, start):
    fires = cron_times("30 * * * *", zone.key, start, 6)
    assert fires == [start + timedelta(minutes=30) + timedelta(hours=n) for n in range(6)]
    assert all(f.astimezone(zone).minute == 30 for f in fires)


def test_hourly_fires_on_both_passes_of_the_repeated_hour():
    fires = cron_times("30 * * * *", "Europe/Berlin", utc(2026, 10, 24, 23, 45), 3)
    assert [f.astimezone(BERLIN).strftime("%H:%M%z") for f in fires] == [
        "02:30+0200", "02:30+0100", "03:30+0100",
    ]


def test_hourly_skips_the_hour_that_does_not_exist():
    fires = cron_times("30 * * * *", "America/New_York", utc(2026, 3, 8, 5), 3)
    assert [f.astimezone(NEW_YORK).strftime("%H:%M") for f in fires] == ["00:30", "01:30", "03:30"]


def test_after_given_in_the_schedule_zone_on_the_second_pass():
    # Aware datetimes sharing a tzinfo compare by wall time; fold must still count.
    after = datetime(2026, 10, 25, 2, 30, tzinfo=BERLIN, fold=1)
    fire = next_fire_after("cron", "30 * * * *", "Europe/Berlin", after, ANCHOR)
    assert fire == utc(2026, 10, 25, 2, 30)  # 03:30 CET


def brute_force(match, zone: ZoneInfo, start: datetime, end: datetime) -> list[datetime]:
    """Every real minute in (start, end] whose local wall time satisfies `match`."""
    minutes = int((end - start) / timedelta(minutes=1))
    moments = (start + timedelta(minutes=n) for n in range(1, minutes + 1))
    return [m for m in moments if match(m.astimezone(zone))]


@pytest.mark.parametrize(
    "zone", [BERLIN, NEW_YORK, ZoneInfo("Australia/Lord_Howe"), ZoneInfo("Antarctica/Troll")]
)
@pytest.mark.parametrize("month", [3, 4, 10, 11])
def test_wildcard_cron_matches_every_real_minute(zone, month):
    start, end = utc(2026, month, 1), utc(2026, month, 1) + timedelta(days=31)
    expected = brute_force(lambda w: w.minute % 20 == 0 and w.hour < 4, zone, start, end)
    fires = cron_times("*/20 0-3 * * *", zone.key, start, len(expected) + 1)
    assert fires[: len(expected)] == expected
    assert fires[-1] > end


@pytest.mark.parametrize(
    "zone",
    [BERLIN, NEW_YORK, ZoneInfo("Australia/Lord_Howe"), ZoneInfo("America/Santiago"),
     ZoneInfo("Antarctica/Troll")],
)
@pytest.mark.parametrize("at_time", ["0 0", "30 1", "30 2", "0 3"])
def test_daily_fires_once_on_every_local_day_of_a_year(zone, at_time):
    minute, hour = at_time.split()
    fires = cron_times(f"{minute} {hour} * * *", zone.key, utc(2026, 1, 1, 12), 365)
    days = local_days(fires, zone)
    assert days == [days[0] + timedelta(days=n) for n in range(365)]
    wrong = [f.astimezone(zone) for f in fires if f.astimezone(zone).hour != int(hour)]
    assert len(wrong) <= 1  # only on a day whose time falls into a spring-forward gap


# --- every -----------------------------------------------------------------------------------


def test_every_counts_from_the_anchor():
    anchor = utc(2026, 5, 4, 10, 0, 7)
    assert next_fire_after("every", "5m", None, anchor, anchor) == utc(2026, 5, 4, 10, 5, 7)
    assert next_fire_after("every", "5m", None, utc(2026, 5, 4, 10, 10, 7), anchor) == utc(
        2026, 5, 4, 10, 15, 7
    )
    assert next_fire_after("every", "5m", None, utc(2026, 5, 4, 9), anchor) == utc(
        2026, 5, 4, 10, 5, 7
    )


def test_every_hour_across_dst_is_exactly_3600_seconds_apart():
    for zone, anchor in [("Europe/Berlin", utc(2026, 3, 28, 23)), ("America/New_York",
                                                                    utc(2026, 11, 1, 3))]:
        fires = next_fire_times("every", "1h", zone, anchor, anchor, 6)
        gaps = [(b - a).total_seconds() for a, b in zip(fires, fires[1:], strict=False)]
        assert fires[0] == anchor + timedelta(hours=1)
        assert gaps == [3600.0] * 5


def test_every_with_fractional_seconds_and_odd_anchor_is_exact():
    anchor = utc(2026, 5, 4, 10, 0, 0) + timedelta(microseconds=123456)
    fires = next_fire_times("every", "1s250ms", None, anchor + timedelta(hours=5), anchor, 3)
    assert fires[0] == anchor + timedelta(milliseconds=1250) * 14401
    assert [(b - a) for a, b in zip(fires, fires[1:], strict=False)] == [
        timedelta(milliseconds=1250)
    ] * 2


# --- at --------------------------------------------------------------------------------------


def test_at_fires_once():
    moment = utc(2026, 12, 1, 8)
    assert next_fire_after("at", "2026-12-01T09:00", "Europe/Berlin", utc(2026, 11, 1), ANCHOR) \
        == moment
    times = next_fire_times("at", "2026-12-01T08:00:00.000000Z", None, utc(2026, 11, 1), ANCHOR, 5)
    assert times == [moment]


def test_at_in_the_past_returns_none():
    assert next_fire_after("at", "2026-12-01T09:00Z", None, utc(2026, 12, 1, 9), ANCHOR) is None
    assert next_fire_after("at", "2026-12-01T09:00Z", None, utc(2027, 1, 1), ANCHOR) is None
    assert next_fire_times("at", "2026-12-01T09:00Z", None, utc(2027, 1, 1), ANCHOR, 3) == []


def test_at_without_offset_or_timezone_is_local_time(monkeypatch):
    monkeypatch.setattr(triggers, "_local_zone", lambda: NEW_YORK)
    assert check_schedule("at", "2026-12-01T09:00", None) == "2026-12-01T14:00:00.000000Z"


# --- next_fire_times, describe, inputs -------------------------------------------------------


def test_next_fire_times_gives_count_increasing_times():
    fires = cron_times("@daily", "Europe/Berlin", utc(2026, 5, 1), 10)
    assert len(fires) == 10
    assert fires == sorted(set(fires))
    assert cron_times("@daily", "Europe/Berlin", utc(2026, 5, 1), 0) == []


def test_naive_after_is_rejected():
    with pytest.raises(ValueError, match="naive datetime"):
        next_fire_after("cron", "@daily", "UTC", datetime(2026, 5, 1), ANCHOR)
