"""Counts in sentences: "1 schedule", "3 schedules"."""

from __future__ import annotations


def plural(count: int, noun: str, nouns: str | None = None) -> str:
    """`count` and the noun, singular for exactly one (`nouns` when adding s is wrong)."""
    return f"{count:,} {noun if count == 1 else nouns or noun + 's'}"
