"""Amounts for people: significant digits, aligned columns, totals that add up as shown."""

import random
import re
from decimal import Decimal

import pytest

from easyflow_cli.cli.money import adds_up, money, money_column

AMOUNT = re.compile(r"^-?\$[\d,]+\.(\d+)$")


@pytest.mark.parametrize(("value", "shown"), [
    (None, "-"), (0, "$0.00"), (1234.5, "$1,234.50"), (0.5, "$0.50"), (0.00012, "$0.00012"),
    (0.0000283, "$0.0000283"), (2.83e-5 + 1e-12, "$0.0000283"), (0.000000063, "$0.000000063"),
    (0.013, "$0.013"), (0.0101, "$0.0101"), (-0.25, "-$0.25"),
])
def test_a_lone_amount_shows_its_significant_digits(value, shown):
    assert money(value, "USD") == shown


def test_no_amount_reads_as_zero_when_it_is_not():
    rng = random.Random(3)
    for _ in range(2000):
        value = 10 ** rng.uniform(-11, 4)
        text = money(value, "EUR")
        assert re.search(r"[1-9]", text), (value, text)
        assert not text.endswith("."), text
        shown = float(text.replace("€", "").replace(",", ""))
        assert abs(shown - value) <= 0.005 * value, (value, text)  # three significant digits


def test_a_column_has_one_number_of_decimals_and_right_aligned_points():
    cells, total = money_column([0.0000283, 0.5, None, 12.0], "USD", 12.5000283)
    assert cells == ["$0.0000283", "$0.5000000", "-", "$12.0000000"]
    assert total == "$12.5000283"
    widths = {len(c) - c.index(".") for c in [*cells, total] if c != "-"}
    assert widths == {8}  # the point is as far from the right end in every cell


def test_totals_add_up_to_the_rows_as_shown():
    rng = random.Random(11)
    for _ in range(500):
        rows = [rng.uniform(0, 0.01) for _ in range(rng.randint(1, 6))]
        cells, total = money_column(rows, "USD", sum(rows))
        shown_rows = sum(Decimal(c.lstrip("$").replace(",", "")) for c in cells)
        if adds_up(rows, sum(rows), len(total.rpartition(".")[2])):
            assert shown_rows == Decimal(total.lstrip("$").replace(",", ""))


def test_rows_that_cannot_add_up_are_left_at_their_own_digits():
    cells, total = money_column([1 / 3] * 3, "USD", 1.0)
    assert cells == ["$0.333"] * 3 and total == "$1.000"
    assert not any(adds_up([1 / 3] * 3, 1.0, decimals) for decimals in range(3, 7))
