"""One place for reading the clock and for the ISO-8601 UTC format used in storage and JSON."""

from __future__ import annotations

from datetime import UTC, datetime, tzinfo
from typing import overload


class TimeOutOfRange(ValueError):
    """A well-formed time that has no UTC equivalent (before year 1 or after 9999)."""


def utcnow() -> datetime:
    return datetime.now(UTC)


def local_zone() -> tzinfo:
    """The machine's zone with its rules; datetime.now().astimezone().tzinfo is a fixed offset
    that would lose them across a DST change."""
    import tzlocal

    return tzlocal.get_localzone()


@overload
def to_iso(moment: datetime) -> str: ...
@overload
def to_iso(moment: None) -> None: ...
@overload
def to_iso(moment: datetime | None) -> str | None: ...


def to_iso(moment: datetime | None) -> str | None:
    """Fixed-width UTC text, so string order is time order in SQL; None stays None."""
    if moment is None:
        return None
    if moment.tzinfo is None:
        raise ValueError("naive datetime given where an aware one is required")
    # No conversion of what is UTC already, and each second's text made once: the daemon
    # writes a few of these per run, and the runs of one wake-up share their seconds.
    if moment.tzinfo is not UTC:
        moment = moment.astimezone(UTC)
    second = (moment.year, moment.month, moment.day, moment.hour, moment.minute, moment.second)
    prefix = _SECONDS.get(second)
    if prefix is None:
        prefix = _second_text(second)
    return f"{prefix}{moment.microsecond:06d}Z"


_Second = tuple[int, int, int, int, int, int]  # year, month, day, hour, minute, second
_SECONDS: dict[_Second, str] = {}
_SECONDS_KEPT = 4096


def _second_text(second: _Second) -> str:
    """'YYYY-MM-DDTHH:MM:SS.' for a second, remembered (a bounded few)."""
    if len(_SECONDS) >= _SECONDS_KEPT:
        _SECONDS.clear()
    text = _SECONDS[second] = datetime(*second).isoformat() + "."
    return text


@overload
def from_iso(text: str) -> datetime: ...
@overload
def from_iso(text: None) -> None: ...
@overload
def from_iso(text: str | None) -> datetime | None: ...


def from_iso(text: str | None) -> datetime | None:
    """The time `to_iso` wrote (or any ISO-8601 time); None stays None."""
    if text is None:
        return None
    return parse_time(text)


def parse_time(text: str, default_tz: tzinfo | None = None) -> datetime:
    """An ISO-8601 time; a time without offset is taken in `default_tz` (else local time).

    ValueError for anything else, including a time that exists only outside UTC's range
    (9999-12-31T23:59-01:00).
    """
    value = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    try:
        if value.tzinfo is None:
            value = value.replace(tzinfo=default_tz) if default_tz else value.astimezone()
        return value.astimezone(UTC)
    except OverflowError:
        raise TimeOutOfRange("is out of range once converted to UTC") from None
