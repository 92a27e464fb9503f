import time
from datetime import UTC, datetime

import pytest

from easyflow_cli.cli.receipt import grams, receipt_line, waited
from easyflow_cli.core.receipts import Receipt

RAN = datetime(2026, 12, 2, 2, 12, tzinfo=UTC)  # 03:12 in Paris


@pytest.fixture
def paris(monkeypatch):
    monkeypatch.setenv("TZ", "Europe/Paris")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


def receipt(**changes):
    fields = dict(ran_at=RAN, cost=0.0004, baseline_cost=0.0017, price_source="tariff: t",
                  waited_s=6 * 3600 + 12 * 60, energy_wh=3.0, energy_source="estimate",
                  carbon_g=0.3, baseline_carbon_g=0.9, carbon_source="c")
    return Receipt(**(fields | changes))


def test_the_receipt_in_one_line(paris):
    assert receipt_line(receipt(), "USD", now=RAN) == (
        "Ran at 03:12 CET: $0.0004 instead of $0.0017 (\N{MINUS SIGN}76 %), waited 6 h 12 m,"
        " 0.3 g CO2 instead of 0.9 g")


def test_another_day_has_its_date_and_no_forecast_no_carbon(paris):
    line = receipt_line(receipt(carbon_g=None, baseline_carbon_g=None, cost=0.002,
                                baseline_cost=0.001), "EUR",
                        now=datetime(2026, 12, 5, tzinfo=UTC))
    assert line == "Ran at 2026-12-02 03:12 CET: €0.002 instead of €0.001 (+100 %), waited 6 h 12 m"


def test_no_change_and_no_baseline():
    assert "(0 %)" in receipt_line(receipt(cost=0.5, baseline_cost=0.5), "USD", now=RAN)
    assert "instead of $0.00," in receipt_line(receipt(baseline_cost=0.0), "USD", now=RAN)


@pytest.mark.parametrize(("seconds", "text"), [
    (22320, "6 h 12 m"), (243, "4 m 3 s"), (0.012, "0.012 s"), (0.0001, "0 s")])
def test_waited(seconds, text):
    assert waited(seconds) == text


@pytest.mark.parametrize(("value", "text"), [
    (0.31, "0.31 g"), (0.004, "4 mg"), (1250.4, "1,250 g"), (0.0, "0 g")])
def test_grams(value, text):
    assert grams(value) == text
