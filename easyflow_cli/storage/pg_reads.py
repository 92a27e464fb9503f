"""Reads of queries written for SQLite, on PostgreSQL: the parameters translated to psycopg's,
and rows in the shape sqlite3 gives them (by position and by name; times as the ISO text
`to_iso` writes, flags as 0 and 1, sums as floats), so the reports handle one shape."""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from datetime import datetime
from decimal import Decimal
from functools import lru_cache
from typing import Any

import psycopg

from easyflow_cli.core.timeutil import to_iso

# What is left alone (string literals, casts) and what is translated (parameters, and `%`,
# which psycopg would take for one).
TOKENS = re.compile(r"'(?:[^']|'')*'|::|\?|:([A-Za-z_]\w*)|%")


@lru_cache(maxsize=1024)
def pg_sql(sql: str) -> str:
    """`?` as `%s`, `:name` as `%(name)s`, a literal `%` as `%%`."""
    def translated(match: re.Match[str]) -> str:
        token = match.group(0)
        if token.startswith("'"):
            return token.replace("%", "%%")
        if token == "::":
            return token
        if token == "?":
            return "%s"
        if token == "%":
            return "%%"
        return f"%({match.group(1)})s"

    return TOKENS.sub(translated, sql)


def sqlite_shaped(cursor: psycopg.Cursor[Any]) -> Callable[[Sequence[Any]], tuple]:
    """A psycopg row factory: rows as `SqliteShapedRow`s of the cursor's columns."""
    names = tuple(column.name for column in cursor.description or ())
    index = {name: position for position, name in enumerate(names)}

    class Row(tuple):
        __slots__ = ()

        def __getitem__(self, key: Any) -> Any:
            return tuple.__getitem__(self, index[key] if isinstance(key, str) else key)

        def keys(self) -> tuple[str, ...]:
            return names

    return lambda values: Row(_as_sqlite(value) for value in values)


def _as_sqlite(value: Any) -> Any:
    if isinstance(value, bool):  # before int: a bool is one
        return int(value)
    if isinstance(value, datetime):
        return to_iso(value)
    if isinstance(value, Decimal):  # sum() of integers
        return float(value)
    return value
