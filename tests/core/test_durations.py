import pytest

from easyflow_cli.core.durations import format_duration, parse_duration


@pytest.mark.parametrize("text, seconds", [
    ("30s", 30), ("5m", 300), ("2h", 7200), ("1d", 86400), ("1w", 604800),
    ("1h30m", 5400), ("1.5h", 5400), ("250ms", 0.25), (" 10s ", 10),
])
def test_parse_duration(text, seconds):
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "5", "5x", "m5", "-5m", "0s", "5 minutes", "1h-2m"])
def test_parse_duration_rejects(text):
    with pytest.raises(ValueError, match="duration"):
        parse_duration(text)


@pytest.mark.parametrize("seconds", [30, 300, 5400, 86400, 90061, 0.25, 1.5, 604800 + 7])
def test_format_round_trips(seconds):
    assert parse_duration(format_duration(seconds)) == pytest.approx(seconds)


def test_format_is_shortest():
    assert format_duration(300) == "5m"
    assert format_duration(5400) == "1h30m"
    assert format_duration(86400) == "1d"
