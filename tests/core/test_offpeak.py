from datetime import UTC, datetime, time
from zoneinfo import ZoneInfo

import pytest

from easyflow_cli.core.offpeak import OffPeakWindow, parse_window

BERLIN = ZoneInfo("Europe/Berlin")


def test_parse_window():
    assert parse_window("22:00-06:00") == OffPeakWindow(time(22), time(6))
    assert parse_window("") is None
    for bad in ("22-06", "25:00-06:00", "10:00-10:00", "late"):
        with pytest.raises(ValueError, match="off-peak"):
            parse_window(bad)


def test_overnight_window_contains():
    window = parse_window("22:00-06:00")
    at = lambda h, m=0: datetime(2026, 11, 25, h, m, tzinfo=BERLIN)  # noqa: E731
    assert window.contains(at(23), BERLIN)
    assert window.contains(at(2), BERLIN)
    assert window.contains(at(22), BERLIN)
    assert not window.contains(at(6), BERLIN)
    assert not window.contains(at(12), BERLIN)


def test_daytime_window():
    window = parse_window("10:00-14:00")
    assert window.contains(datetime(2026, 1, 1, 11, tzinfo=UTC), UTC)
    assert not window.contains(datetime(2026, 1, 1, 15, tzinfo=UTC), UTC)


def test_next_start():
    window = parse_window("22:00-06:00")
    noon = datetime(2026, 11, 25, 12, tzinfo=BERLIN)
    assert window.next_start(noon, BERLIN) == datetime(2026, 11, 25, 22, tzinfo=BERLIN)
    night = datetime(2026, 11, 25, 23, tzinfo=BERLIN)
    assert window.next_start(night, BERLIN) == night


def test_next_start_across_dst_change():
    window = parse_window("22:00-06:00")
    # 2026-10-25 03:00 CEST -> 02:00 CET: the window opens at 22:00 local that day.
    morning = datetime(2026, 10, 25, 12, tzinfo=BERLIN)
    start = window.next_start(morning, BERLIN)
    assert start.astimezone(BERLIN).hour == 22
    assert start.astimezone(UTC) == datetime(2026, 10, 25, 21, tzinfo=UTC)
