"""Amounts of money for people: enough significant digits that no cost reads `$0.`, and a
column's amounts with one number of decimals, so their points line up and their total adds up.

JSON and CSV carry the amounts as computed; only what people read is rounded, here.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from decimal import ROUND_HALF_EVEN, Decimal

SYMBOLS = {"USD": "$", "EUR": "€", "GBP": "£"}
SIGNIFICANT = 3  # of the smallest amount shown: $0.0000283, not $0.00003
CENTS = 2
# Past this many digits beyond the smallest amount's, a total that still differs from its rows'
# sum does so by float noise, and more digits would help no one read it.
EXTRA_DIGITS_FOR_TOTAL = 3


def money(value: float | None, currency: str) -> str:
    """One amount on its own: cents when it has them, else its significant digits."""
    if value is None:
        return "-"
    decimals = decimals_for([value])
    text = _amount(value, currency, decimals)
    # Zeros past the significant digits say nothing; past the cents only.
    whole, _, fraction = text.partition(".")
    return f"{whole}.{fraction[:CENTS]}{fraction[CENTS:].rstrip('0')}"


def money_column(values: Sequence[float | None], currency: str,
                 total: float | None = None) -> tuple[list[str], str | None]:
    """The column's amounts, and its total, with one number of decimals: enough for the
    smallest amount's significant digits and, when it can be had, for the rows as shown to
    add up to the total as shown."""
    known = [v for v in values if v is not None]
    decimals = decimals_for(known + ([total] if total is not None else []))
    if total is not None:
        decimals = decimals_adding_up(known, total, decimals)
    cells = [_cell(v, currency, decimals) for v in values]
    return cells, None if total is None else _cell(total, currency, decimals)


def adds_up(values: Sequence[float], total: float, decimals: int) -> bool:
    """Whether the amounts rounded to `decimals` sum to the total rounded alike."""
    return sum(_rounded(v, decimals) for v in values) == _rounded(total, decimals)


def decimals_for(values: Sequence[float]) -> int:
    """Cents, or more: as many as show the smallest nonzero amount's significant digits."""
    smallest = min((abs(v) for v in values if v), default=None)
    if smallest is None or smallest >= 1:
        return CENTS
    return max(CENTS, SIGNIFICANT - 1 - math.floor(math.log10(smallest)))


def decimals_adding_up(values: Sequence[float], total: float, decimals: int) -> int:
    """`decimals`, or a few more if that makes the rows as shown add up to the total as shown;
    `decimals` if none does (the renderer then says the total is of the exact amounts)."""
    for more in range(decimals, decimals + EXTRA_DIGITS_FOR_TOTAL + 1):
        if adds_up(values, total, more):
            return more
    return decimals


def _cell(value: float | None, currency: str, decimals: int) -> str:
    """An amount in a column; nothing at all is `$0` (a row of zeros would read like an
    amount too small to show)."""
    if value is None:
        return "-"
    if value == 0:
        return f"{SYMBOLS.get(currency, currency + ' ')}0"
    return _amount(value, currency, decimals)


def _rounded(value: float, decimals: int) -> Decimal:
    return Decimal(repr(value)).quantize(Decimal(1).scaleb(-decimals), ROUND_HALF_EVEN)


def _amount(value: float, currency: str, decimals: int) -> str:
    symbol = SYMBOLS.get(currency, currency + " ")
    sign = "-" if value < 0 and _rounded(value, decimals) else ""
    return f"{sign}{symbol}{_rounded(abs(value), decimals):,.{decimals}f}"
