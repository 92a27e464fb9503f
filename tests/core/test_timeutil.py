import random
from datetime import UTC, datetime, timedelta, timezone

from easyflow_cli.core import timeutil
from easyflow_cli.core.timeutil import from_iso, to_iso


def isoformat_text(moment: datetime) -> str:
    return moment.astimezone(UTC).replace(tzinfo=None).isoformat(timespec="microseconds") + "Z"


def test_to_iso_writes_what_isoformat_writes_for_any_moment_and_zone():
    rng = random.Random(7)
    start = datetime(1, 1, 2, tzinfo=UTC)
    span = (datetime(9999, 12, 30, tzinfo=UTC) - start).total_seconds()
    for _ in range(3000):
        moment = start + timedelta(seconds=rng.uniform(0, span), microseconds=rng.randrange(10**6))
        zone = timezone(timedelta(minutes=rng.randrange(-12 * 60, 14 * 60)))
        assert to_iso(moment.astimezone(zone)) == isoformat_text(moment)
        assert from_iso(to_iso(moment)) == moment


def test_to_iso_keeps_a_bounded_number_of_seconds(monkeypatch):
    monkeypatch.setattr(timeutil, "_SECONDS_KEPT", 10)
    base = datetime(2026, 12, 2, 16, 0, 0, 123, tzinfo=UTC)
    texts = [to_iso(base + timedelta(seconds=n)) for n in range(25)]
    assert len(timeutil._SECONDS) <= 10
    assert texts[24] == "2026-12-02T16:00:24.000123Z"
    assert to_iso(base) == texts[0] == "2026-12-02T16:00:00.000123Z"
