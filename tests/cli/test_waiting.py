"""What a run that waits for off-peak hours says when it is queued."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from easyflow_cli.cli.money import money_column
from easyflow_cli.cli.output import short_time
from easyflow_cli.cli.waiting import Wait, explain, starts, wait_of
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


def waiting_nightly(store, home, costs: str):
    """A queued eco run of `nightly` (half an hour, learned from 12 runs) planned to start in
    6 hours, under a config whose [costs] table holds `costs`."""
    from easyflow_cli.core.config import load_config
    from easyflow_cli.core.spec import parse_workflow_text
    from tests.reporting.test_advice import history
    from tests.reporting.test_why import NOW as AT
    from tests.reporting.test_why import eco_run

    (home / "easyflow.toml").write_text(
        f'[costs]\noff_peak = ""\n{costs}[pools.eco]\noff_peak = ""\n')
    spec = parse_workflow_text('name = "nightly"\ntimeout = "1h"\n[[steps]]\nrun = ["true"]\n',
                               "nightly.toml")
    store.save_workflows([spec], AT)
    history(store, "nightly", runs=12, days=10, mode="eco", trigger="schedule",
            duration_s=1800.0)
    run = store.queue.get(eco_run(store, deadline_h=12, not_before_h=6))
    return wait_of(store, load_config(), spec, run, AT), AT


def test_a_waiting_run_is_quoted_at_its_planned_start(store, home):
    wait, at = waiting_nightly(store, home, "")
    assert wait is not None and wait.start == at + timedelta(hours=6)
    # Half an hour at eco's $0.05 per worker-hour there, against real-time's $0.10 now.
    assert (wait.cost, wait.real_time_cost) == (pytest.approx(0.025), pytest.approx(0.05))


def test_a_waiting_run_is_quoted_by_the_tariff_where_it_covers_it(store, home):
    from tests.reporting.test_why import NOW as AT

    tariff = home / "tariff.csv"
    tariff.write_text(
        "start,end,value,unit\n"
        f"{to_iso(AT)},{to_iso(AT + timedelta(hours=1))},2.0,multiplier\n"
        f"{to_iso(AT + timedelta(hours=6))},{to_iso(AT + timedelta(hours=7))},0.1,multiplier\n")
    wait, _ = waiting_nightly(store, home, f'tariff = "{tariff}"\n')
    # A tenth of eco's price at its window, twice real-time's now: the tariff's, not the pools'.
    assert wait is not None and wait.as_json() == {
        "currency": "USD", "cost": pytest.approx(0.1 * 0.05 / 2),
        "real_time_cost": pytest.approx(2.0 * 0.10 / 2)}
