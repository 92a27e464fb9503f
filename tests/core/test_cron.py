"""Crontab expressions read as cron reads them (cron.py); fire times are tested in
test_triggers.py, and against an independent implementation in test_cron_oracle.py."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from easyflow_cli.core.cron import parse_cron
from easyflow_cli.core.triggers import next_fire_times

ODD_MONTHS = {1, 3, 5, 7, 9, 11}


@pytest.mark.parametrize(
    ("month_field", "months"),
    [
        ("feb-nov/3", {2, 5, 8, 11}),
        ("jan/2", ODD_MONTHS),
        ("JAN/2", ODD_MONTHS),
        ("MAR-8", {3, 4, 5, 6, 7, 8}),
        ("7-AUG/1", {7, 8}),
        ("10-oct", {10}),
        ("Dec", {12}),
        ("1-12/5", {1, 6, 11}),
        ("*/5", {1, 6, 11}),
        ("nov/1", {11, 12}),
        ("jan,jun-aug,11", {1, 6, 7, 8, 11}),
        ("*/100", {1}),
    ],
)
def test_month_names_numbers_ranges_and_steps_combine(month_field, months):
    assert parse_cron(f"0 0 1 {month_field} *").months == months


@pytest.mark.parametrize(
    ("expr", "minutes", "hours"),
    [
        ("*/60 * * * *", (0,), tuple(range(24))),  # a step past the range: its first value
        ("0 */24 * * *", (0,), (0,)),
        ("5/15 1/12 * * *", (5, 20, 35, 50), (1, 13)),
        ("10-50/20,3 23-23 * * *", (3, 10, 30, 50), (23,)),
        ("07 08 * * *", (7,), (8,)),
        ("5-5/2 9-9/5 * * *", (5,), (9,)),  # a one-value range with a step is that value
        ("*/1000000000 * * * *", (0,), tuple(range(24))),
    ],
)
def test_minute_and_hour_steps(expr, minutes, hours):
    cron = parse_cron(expr)
    assert (cron.minutes, cron.hours) == (minutes, hours)


@pytest.mark.parametrize(
    ("weekday_field", "weekdays"),
    [
        ("0", {0}), ("7", {0}), ("sun", {0}), ("SAT", {6}), ("mon-fri", {1, 2, 3, 4, 5}),
        ("fri-7", {5, 6, 0}), ("*/2", {0, 2, 4, 6}), ("1/2", {1, 3, 5, 0}),
        ("sun-sat/3", {0, 3, 6}), ("7/3", {0}),
    ],
)
def test_weekdays_count_from_sunday_and_seven_is_sunday(weekday_field, weekdays):
    assert parse_cron(f"0 0 * * {weekday_field}").weekdays == weekdays


@pytest.mark.parametrize(
    ("expr", "either_day"),
    [
        ("0 0 1 * 5", True), ("0 0 1,15 * mon", True), ("0 0 1-7 * 1/2", True),
        ("0 0 * * 5", False), ("0 0 */2 * 5", False), ("0 0 1 * */1", False),
        ("0 0 *,1 * 5", False),
    ],
)
def test_both_day_fields_restricted_means_either(expr, either_day):
    # Restricted means "does not start with *", as crontab(5) and cron's source read it.
    assert parse_cron(expr).either_day is either_day


@pytest.mark.parametrize(
    ("expr", "problem"),
    [
        ("0 8 * jan5 *", "month: 'jan5' is not a value (1-12 or jan-dec)"),
        ("0 8 * jan$ *", "month: 'jan$' is not a value (1-12 or jan-dec)"),
        ("0 8 * jan-feb-mar *", "month: 'jan-feb-mar' has more than one '-'"),
        ("0 8 * january *", "month: 'january' is not a value (1-12 or jan-dec)"),
        ("*/0 * * * *", "minute: step must be at least 1"),
        ("* * * * */0", "day of week: step must be at least 1"),
        ("*/x * * * *", "minute: step 'x' in '*/x' is not a whole number"),
        ("*/ * * * *", "minute: step '' in '*/' is not a whole number"),
        ("1/2/3 * * * *", "minute: '1/2/3' has more than one '/'"),
        ("jan * * * *", "minute: 'jan' is not a number"),
        ("0 0 * * mon-", "day of week: 'mon-' is missing a value"),
        ("-5 * * * *", "minute: '-5' is missing a value"),
        ("/5 * * * *", "minute: '/5' is missing a value"),
        ("1,,2 * * * *", "minute: empty item in the list"),
        ("1, * * * *", "minute: empty item in the list"),
        ("*-5 * * * *", "minute: '*' is the whole field and cannot be part of a range"),
        ("0 0 * * fri-mon", "day of week: range 'fri-mon' runs backwards"),
        ("0 0 * * fri-sun", "day of week: range 'fri-sun' runs backwards; write 7 for a Sunday"),
        ("30-10 * * * *", "minute: range '30-10' runs backwards"),
        ("0 0 L * *", "day of month: 'L' is not a number"),
        ("0 0 * * 5#2", "day of week: '5#2' is not a value (0-7 or sun-sat)"),
        ("0 0 ? * *", "day of month: '?' is not a number"),
        ("0 0 * * ５", "day of week: '５' is not a value"),
        ("99999999999 * * * *", "minute: '99999999999' is out of range 0-59"),
        ("0 0 0 * *", "day of month: '0' is out of range 1-31"),
        ("0 0 30 2 *", "it never matches a real date"),
        ("0 0 31 4,6,9,11 *", "it never matches a real date"),
        ("0 0 30,31 feb */2", "it never matches a real date"),
    ],
)
def test_what_cron_refuses_is_refused_naming_field_and_problem(expr, problem):
    with pytest.raises(ValueError) as info:
        parse_cron(expr)
    assert str(info.value).startswith(problem)


@pytest.mark.parametrize("expr", ["0 0 31 2 1", "0 0 30 2 mon", "0 0 29 2 *", "0 0 31 * *",
                                  "0 0 29 2 */7"])
def test_expressions_that_can_fire_are_accepted(expr):
    parse_cron(expr)


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def fire_dates(expr: str, after: datetime, count: int) -> list[date]:
    return [f.date() for f in next_fire_times("cron", expr, "UTC", after, after, count)]


def test_every_third_month_from_february_fires_in_may_not_march():
    assert fire_dates("0 8 1 feb-nov/3 *", utc(2026, 2, 15), 4) == [
        date(2026, 5, 1), date(2026, 8, 1), date(2026, 11, 1), date(2027, 2, 1),
    ]


def test_impossible_date_or_weekday_fires_on_the_weekdays():
    # The 31st of February never comes, so only "any Monday in February" fires.
    fires = fire_dates("0 0 31 2 1", utc(2026, 3, 1), 6)
    assert fires == [date(2027, 2, d) for d in (1, 8, 15, 22)] + [date(2028, 2, 7),
                                                                   date(2028, 2, 14)]


def test_leap_day_on_a_sunday_is_found_decades_ahead():
    # Both day fields must match (day of week starts with *): 29 February that is a Sunday.
    assert fire_dates("0 0 29 2 */7", utc(2026, 1, 1), 2) == [date(2032, 2, 29),
                                                               date(2060, 2, 29)]


def test_leap_days_skip_the_centuries_that_have_none():
    assert fire_dates("0 0 29 2 *", utc(2096, 3, 1), 2) == [date(2104, 2, 29), date(2108, 2, 29)]
    assert fire_dates("0 0 29 2 *", utc(2396, 3, 1), 1) == [date(2400, 2, 29)]


def test_last_minute_of_the_calendar_ends_the_schedule():
    assert next_fire_times("cron", "59 23 31 12 *", "UTC", utc(9999, 12, 31, 23, 59),
                           utc(2026, 1, 1), 3) == []


def test_a_day_in_a_month_not_allowed_does_not_fire():
    assert fire_dates("0 0 * apr *", utc(2027, 3, 14), 2) == [date(2027, 4, 1), date(2027, 4, 2)]
    assert fire_dates("0 0 * 1,apr 5", utc(2027, 3, 12), 1) == [date(2027, 4, 2)]
