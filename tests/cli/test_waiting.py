"""What a run that waits for off-peak hours says when it is queued."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from easyflow_cli.cli.money import money_column
from easyflow_cli.cli.output import short_time
from easyflow_cli.cli.waiting import Wait, explain, starts
from easyflow_cli.core.timeutil import to_iso

NOW = datetime(2026, 12, 2, 11, 48, 20, tzinfo=UTC)


@pytest.mark.parametrize(("left", "said"), [
    (timedelta(hours=10, minutes=12, seconds=10), "10h12m"),
    (timedelta(hours=10, minutes=11, seconds=40), "10h12m"),
    (timedelta(minutes=3), "3m"),
    (timedelta(seconds=42), "42s"),
    (timedelta(seconds=0.2), "1s"),
])
def test_starts_says_when_and_in_how_long(left: timedelta, said: str) -> None:
    assert starts(NOW + left, NOW) == f"{short_time(to_iso(NOW + left))}, in {said}"


def test_explain_puts_both_prices_side_by_side(capsys: pytest.CaptureFixture[str]) -> None:
    start = NOW + timedelta(hours=10, minutes=12)
    explain(Wait(8, "nightly", start, 0.04, 0.10, "USD"), NOW)
    out, err = capsys.readouterr()
    then, now = money_column([0.04, 0.10], "USD")[0]  # one column: the same decimals
    assert then.startswith("$0.04") and now.startswith("$0.1")
    assert out == ""  # talk only: stdout stays for data
    assert err.splitlines() == [
        f"run 8 waits for off-peak hours: it starts {short_time(to_iso(start))}, in 10h12m",
        f"Run then: {then} · Run now: {now} (easyflow run nightly --now --mode real-time)",
    ]
