"""Reading a message line back: one JSON object per line, tagged by its kind, each field read
through a check that names the field when it fails, so whatever is malformed becomes a
`ProtocolError` that says what is wrong. protocol.py builds its messages through it.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from typing import Any

from easyflow_cli.core.errors import shown

# SQLite's INTEGER is signed 64-bit: a run id or a process id beyond it names nothing.
MAX_ID = 2**63 - 1
# A worker holds a few dozen runs and gives back at most those.
MAX_IDS = 100_000
# The largest finite float: NaN fails every comparison, infinity this one.
_LARGEST = sys.float_info.max


class ProtocolError(ValueError):
    """A message that is not one of ours: its text says what is wrong with it."""


def decode_line(line: bytes, tag: str, table: dict[str, Callable[[Fields], Any]],
                what: str) -> Any:
    """The message `line` holds: `table` builds it by the kind `tag` names."""
    try:
        data = json.loads(line)
    except (ValueError, RecursionError) as exc:  # UnicodeDecodeError is a ValueError
        raise ProtocolError(f"a {what} is one JSON object per line: {shown(str(exc))}") from None
    if not isinstance(data, dict):
        got = "null" if data is None else type(data).__name__
        raise ProtocolError(f"a {what} is one JSON object, not {got}")
    kind = data.get(tag)
    build = table.get(kind) if isinstance(kind, str) else None
    if build is None or not isinstance(kind, str):
        raise ProtocolError(f"unknown {tag} {shown(kind)}")
    return build(Fields(kind, data))


class Fields:
    """A message's fields, each read through a check that names the field when it fails."""

    __slots__ = ("kind", "data", "within")

    def __init__(self, kind: str, data: dict[str, Any], within: str | None = None) -> None:
        self.kind = kind
        self.data = data
        self.within = within  # the field of the message these fields are the value of

    def fail(self, name: str, must: str) -> ProtocolError:
        got = "missing" if name not in self.data else f"got {shown(self.data[name])}"
        where = self.kind if self.within is None else f"{self.kind}.{self.within}"
        return ProtocolError(f"{where}: {name} must be {must} ({got})")

    def run_ids(self, name: str) -> list[int]:
        values = self.items(name, default=[])
        if not all(type(v) is int and 0 < v <= MAX_ID for v in values):
            raise self.fail(name, "a list of run ids (positive integers)")
        return values

    def items(self, name: str, default: list[Any] | None = None) -> list[Any]:
        values: Any = self.data.get(name, default)
        if type(values) is not list or len(values) > MAX_IDS:
            raise self.fail(name, f"a list of at most {MAX_IDS} entries")
        return values

    def positive(self, name: str, must: str = "a run id (a positive integer)") -> int:
        value: Any = self.data.get(name)
        if type(value) is not int or not 0 < value <= MAX_ID:
            raise self.fail(name, must)
        return value

    # These run for every report: checks inline, no helper calls on the way to "valid".
    def number(self, name: str, optional: bool = False) -> Any:
        value: Any = self.data.get(name)
        kind = type(value)
        if (kind is float or kind is int) and 0 <= value <= _LARGEST or optional and value is None:
            return value
        raise self.fail(name, "a finite number, not negative")

    def integer(self, name: str, optional: bool = False) -> Any:
        value: Any = self.data.get(name)
        if type(value) is int and -MAX_ID <= value <= MAX_ID or optional and value is None:
            return value
        raise self.fail(name, "an integer")

    def text(self, name: str, optional: bool = False) -> Any:
        value: Any = self.data.get(name)
        if type(value) is str or optional and value is None:
            return value
        raise self.fail(name, "a string")

    def table(self, name: str) -> dict[str, Any]:
        value: Any = self.data.get(name)
        if type(value) is not dict:
            raise self.fail(name, "an object")
        return value

    def inner(self, name: str) -> Fields:
        return Fields(self.kind, self.table(name), name)

    @staticmethod
    def of(kind: str, value: Any) -> Fields:
        if type(value) is not dict:
            raise ProtocolError(f"{kind} must be an object (got {shown(value)})")
        return Fields(kind, value)
