"""Durations as users write them: `30s`, `5m`, `2h`, `1d`, `1w`, or compounds like `1h30m`."""

from __future__ import annotations

import re

from easyflow_cli.core.errors import shown

_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d|w)")
_WHOLE = re.compile(r"^(?:\d+(?:\.\d+)?(?:ms|s|m|h|d|w))+$")
# Past ten years a duration is a typo; beyond it, adding one to a date overflows and a huge
# float becomes infinity. Under a millisecond, `format_duration` could not write it back.
MAX_SECONDS = 3650 * 86400
MIN_SECONDS = 0.001


def parse_duration(text: str) -> float:
    """Seconds in `text`; ValueError with a message a user can act on."""
    if not isinstance(text, str):
        raise ValueError(f"expected a duration string like '30s', '5m', '2h', got {shown(text)}")
    compact = text.strip().replace(" ", "")
    if not _WHOLE.fullmatch(compact):
        raise ValueError(
            f"bad duration {shown(text)}: write it like '30s', '5m', '2h', '1d' or '1h30m'")
    seconds = sum(float(n) * _UNITS[unit] for n, unit in _PART.findall(compact))
    if seconds <= 0:
        raise ValueError(f"bad duration {shown(text)}: must be longer than zero")
    if seconds < MIN_SECONDS:
        raise ValueError(f"bad duration {shown(text)}: must be at least 1ms")
    if seconds > MAX_SECONDS:
        raise ValueError(f"bad duration {shown(text)}: must be at most 3650d (ten years)")
    return seconds


def looks_like_duration(text: str) -> bool:
    """Written as a duration (`0s`, `99999d`), whether or not it is one we accept: its error
    then says what is wrong with it rather than that it is no duration at all."""
    return bool(_WHOLE.fullmatch(text.strip().replace(" ", "")))


def format_duration(seconds: float) -> str:
    """The shortest canonical spelling that `parse_duration` reads back to the same value."""
    if seconds <= 0:
        return "0s"
    if seconds != int(seconds):
        whole = int(seconds)
        millis = round((seconds - whole) * 1000)
        return (format_duration(whole) if whole else "") + (f"{millis}ms" if millis else "")
    remaining = int(seconds)
    parts = []
    for unit in ("w", "d", "h", "m", "s"):
        size = int(_UNITS[unit])
        if remaining >= size:
            count, remaining = divmod(remaining, size)
            parts.append(f"{count}{unit}")
    return "".join(parts)
