"""A run's receipt in one line, for people: `Ran at 03:12 CET: $0.0004 instead of $0.0017
(−76 %), waited 6 h 12 m, 0.3 g CO2 instead of 0.9 g`."""

from __future__ import annotations

from datetime import datetime

from easyflow_cli.cli.money import money
from easyflow_cli.core.receipts import Receipt

MINUS = "\N{MINUS SIGN}"


def receipt_line(receipt: Receipt, currency: str, now: datetime | None = None) -> str:
    parts = [f"Ran at {_when(receipt.ran_at, now)}: {_cost(receipt, currency)}",
             f"waited {waited(receipt.waited_s)}"]
    if receipt.carbon_g is not None and receipt.baseline_carbon_g is not None:
        parts.append(f"{grams(receipt.carbon_g)} CO2 instead of {grams(receipt.baseline_carbon_g)}")
    return ", ".join(parts)


def _when(moment: datetime, now: datetime | None) -> str:
    """Local time with its zone; the date too unless it was today."""
    local = moment.astimezone()
    today = (now or datetime.now(local.tzinfo)).astimezone().date()
    return local.strftime("%H:%M %Z" if local.date() == today else "%Y-%m-%d %H:%M %Z")


def _cost(receipt: Receipt, currency: str) -> str:
    text = f"{money(receipt.cost, currency)} instead of {money(receipt.baseline_cost, currency)}"
    if receipt.saving_pct is None:
        return text
    change = f"{-receipt.saving_pct:+.0f}".replace("-", MINUS)
    return f"{text} ({'0' if change[1:] == '0' else change} %)"


def waited(seconds: float) -> str:
    """`6 h 12 m`, `4 m 3 s`, `0.012 s`."""
    if seconds >= 3600:
        hours, rest = divmod(round(seconds), 3600)
        return f"{hours} h {rest // 60} m"
    if seconds >= 60:
        minutes, rest = divmod(round(seconds), 60)
        return f"{minutes} m {rest} s"
    return f"{seconds:.2g} s" if seconds >= 0.001 else "0 s"


def grams(value: float) -> str:
    """`0.31 g`, `4 mg`, `1,250 g`: two significant digits, whole grams from a hundred."""
    if abs(value) >= 100:
        return f"{value:,.0f} g"
    if value and abs(value) < 0.01:
        return f"{value * 1000:.2g} mg"
    return f"{value:.2g} g"
