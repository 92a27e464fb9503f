"""Reading a TOML document as we report on it: every problem found (not only the first), each
naming its file, line and field (`steps[0].run`), and a syntax error as one plain line.

Workflow files (`spec.py`) and the config (`config.py`) are checked through this module.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Iterator
from datetime import date, datetime, time
from enum import Enum
from typing import Any, TypeVar

from easyflow_cli.core.durations import parse_duration
from easyflow_cli.core.errors import SpecError, SpecErrors, shown

Choice = TypeVar("Choice", bound=Enum)


# --------------------------------------------------------------------------- locating lines


class KeyLines:
    """Maps key paths like ("steps", 0, "run") to the line they are written on.

    tomllib does not report positions, so we scan the text for table headers and `key =` lines.
    Good enough for error messages; a path we cannot place falls back to its parent.
    """

    _HEADER = re.compile(r"^\s*(\[\[?)\s*([A-Za-z0-9_.\"'-]+)\s*\]\]?")
    _KEY = re.compile(r"^\s*([A-Za-z0-9_.\"'-]+)\s*=")

    def __init__(self, text: str) -> None:
        self.lines: dict[tuple, int] = {}
        counters: dict[str, int] = {}
        prefix: tuple = ()
        in_multiline = False
        for number, line in enumerate(text.splitlines(), start=1):
            if line.count('"""') % 2 == 1 or line.count("'''") % 2 == 1:
                was_inside = in_multiline
                in_multiline = not in_multiline
                if was_inside:
                    continue
            elif in_multiline:
                continue
            header = self._HEADER.match(line)
            if header:
                name = header.group(2).strip("\"'")
                if header.group(1) == "[[":
                    index = counters.get(name, -1) + 1
                    counters[name] = index
                    prefix = (name, index)
                    self.lines.setdefault((name,), number)
                else:
                    prefix = tuple(name.split("."))
                self.lines.setdefault(prefix, number)
                continue
            key = self._KEY.match(line)
            if key:
                dotted = tuple(part.strip("\"'") for part in key.group(1).split("."))
                for end in range(1, len(dotted) + 1):
                    self.lines.setdefault(prefix + dotted[:end], number)

    def line_of(self, path: tuple) -> int | None:
        while path:
            if path in self.lines:
                return self.lines[path]
            path = path[:-1]
        return None


# --------------------------------------------------------------------------- validation


class Checker:
    """Collects every problem in one document instead of stopping at the first."""

    def __init__(self, file: str | None, lines: KeyLines | None) -> None:
        self.file = file
        self.lines = lines
        self.errors: list[SpecError] = []

    def fail(self, path: tuple, message: str) -> None:
        line = self.lines.line_of(path) if self.lines else None
        dotted = ".".join(
            f"{p}[{i}]" if isinstance(i, int) else str(p)
            for p, i in _pairs(path)
        )
        self.errors.append(SpecError(message, file=self.file, line=line, field=dotted or None))

    def unknown_keys(self, table: dict, allowed: tuple[str, ...], path: tuple) -> None:
        for key in table:
            if key not in allowed:
                import difflib  # here: only a misspelt key needs it

                close = difflib.get_close_matches(key, allowed, n=1, cutoff=0.6)
                hint = f" (did you mean '{close[0]}'?)" if close else ""
                self.fail(path + (key,), f"unknown key{hint}")

    def tables(self, raw: list, name: str, allowed: tuple[str, ...]
               ) -> Iterator[tuple[int, tuple, dict]]:
        """The tables of the array `name` ([[name]]), each with its index and path, its keys
        checked against `allowed`; an item that is not a table is refused."""
        for index, item in enumerate(raw):
            path = (name, index)
            if not isinstance(item, dict):
                self.fail(path, f"must be a table, got {type_name(item)}")
                continue
            self.unknown_keys(item, allowed, path)
            yield index, path, item

    def string(self, table: dict, key: str, path: tuple, *, required: bool = False) -> str | None:
        if key not in table:
            if required:
                self.fail(path + (key,), "is required")
            return None
        value = table[key]
        if not isinstance(value, str):
            self.fail(path + (key,), f"must be a string, got {type_name(value)}")
            return None
        if "\0" in value:
            self.fail(path + (key,), NUL_MESSAGE)
            return None
        return value

    def boolean(self, table: dict, key: str, path: tuple) -> bool:
        value = table.get(key, False)
        if not isinstance(value, bool):
            self.fail(path + (key,), f"must be true or false, got {type_name(value)}")
            return False
        return value

    def duration(self, table: dict, key: str, path: tuple) -> float | None:
        text = self.string(table, key, path)
        if text is None:
            return None
        try:
            return parse_duration(text)
        except ValueError as exc:
            self.fail(path + (key,), str(exc))
            return None

    def choice(self, table: dict, key: str, path: tuple, enum: type[Choice]) -> Choice | None:
        text = self.string(table, key, path)
        if text is None:
            return None
        try:
            return enum(text)
        except ValueError:
            allowed = ", ".join(f'"{m.value}"' for m in enum)
            self.fail(path + (key,), f"must be one of {allowed}, got {shown(text)}")
            return None


# No program can receive a NUL inside an argument, an environment value or a path.
NUL_MESSAGE = "must not contain a NUL character"


def _pairs(path: tuple) -> Iterator[tuple[Any, int | None]]:
    """Render ("steps", 0, "run") as steps[0].run."""
    items = list(path)
    while items:
        head = items.pop(0)
        if items and isinstance(items[0], int):
            yield head, items.pop(0)
        else:
            yield head, None


def type_name(value: Any) -> str:
    return {
        bool: "a boolean", int: "an integer", float: "a number", str: "a string",
        list: "an array", dict: "a table", datetime: "a date-time", date: "a date",
        time: "a time",
    }.get(type(value), type(value).__name__)


def load_toml(text: str, file: str | None) -> dict[str, Any]:
    """The TOML document in `text`, or SpecErrors with one line saying what is wrong where."""
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise SpecErrors([_syntax_error(exc, text, file)]) from None
    except ValueError:
        # tomllib lets Python's int() refuse an integer of more than 4300 digits.
        raise SpecErrors([SpecError("TOML value error: a number has too many digits to read",
                                    file=file)]) from None
    except RecursionError:
        raise SpecErrors([SpecError("TOML syntax error: arrays or tables nested too deeply",
                                    file=file)]) from None


def _syntax_error(exc: tomllib.TOMLDecodeError, text: str, file: str | None) -> SpecError:
    message = str(exc)
    found = re.search(r"\(at line (\d+), column \d+\)", message)
    line = int(found.group(1)) if found else max(1, len(text.splitlines()))
    message = re.sub(r"\s*\(at line \d+, column \d+\)", "", message)
    message = re.sub(r"\s*\(at end of document\)", " at end of file", message)
    return SpecError(f"TOML syntax error: {message}", file=file, line=line)


