"""The few SQL expressions the reports spell differently in SQLite and PostgreSQL, and what the
reports need of a store, whichever it is.

The reports write each query once, with SQLite's `?` and `:name` parameters (the PostgreSQL
store translates them as it reads, `pg_reads.py`), and ask the store's `dialect` for what
differs: the epoch seconds, UTC day and time of day of a stored time (ISO text in SQLite,
`timestamptz` in PostgreSQL), the current time, the index to read, how a read sees one
snapshot. SQLite's spellings are those its report indexes were built on, character for
character: an index holds an expression's values only for a query that spells it the same.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from easyflow_cli.core.spec import WorkflowSpec
from easyflow_cli.storage.run_queue import RunQueue

Args = Sequence[Any] | Mapping[str, Any]


@dataclass(frozen=True)
class Dialect:
    """Templates, each with `{}` where the expression (or index name) it applies to goes."""

    name: str
    true: str
    false: str
    now: str  # the current time, comparable with a stored time
    begin_snapshot: str  # a read transaction in which every query sees the same database
    row_id: str  # a row's own address in a table without an id column
    epoch_of: str
    day_of: str  # 'YYYY-MM-DD' of a stored time, in UTC
    time_of_day_of: str  # comparable with the literal 'HH:MM:SS.ffffff', in UTC
    seconds_between_of: str  # {0} to {1}, in seconds
    is_of: str
    is_not_of: str
    indexed_by_of: str

    def epoch(self, time: str) -> str:
        return self.epoch_of.format(time)

    def day(self, time: str) -> str:
        return self.day_of.format(time)

    def time_of_day(self, time: str) -> str:
        return self.time_of_day_of.format(time)

    def seconds_between(self, begin: str, end: str) -> str:
        return self.seconds_between_of.format(begin, end)

    def is_(self, left: str, right: str) -> str:
        """`left` equals `right`, NULL equal to NULL."""
        return self.is_of.format(left, right)

    def is_not(self, left: str, right: str) -> str:
        return self.is_not_of.format(left, right)

    def indexed_by(self, index: str) -> str:
        """Which index a query reads (SQLite's planner is told; PostgreSQL's chooses)."""
        return self.indexed_by_of.format(index)


SQLITE = Dialect(
    name="sqlite", true="1", false="0", now="strftime('%Y-%m-%dT%H:%M:%fZ', 'now')",
    begin_snapshot="BEGIN", row_id="rowid",
    epoch_of="(julianday({}) - 2440587.5) * 86400.0",
    day_of="substr({}, 1, 10)", time_of_day_of="substr({}, 12)",
    seconds_between_of="(julianday({1}) - julianday({0})) * 86400.0",
    is_of="{} IS {}", is_not_of="{} IS NOT {}", indexed_by_of="INDEXED BY {}")

# Times are `timestamptz`, read in UTC (`PgStore` sets the session's zone).
POSTGRES = Dialect(
    name="postgresql", true="true", false="false", now="now()",
    begin_snapshot="BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY", row_id="ctid",
    epoch_of="date_part('epoch', {})",
    day_of="to_char({} AT TIME ZONE 'UTC', 'YYYY-MM-DD')",
    time_of_day_of="({} AT TIME ZONE 'UTC')::time",
    seconds_between_of="date_part('epoch', {1} - {0})",
    is_of="{} IS NOT DISTINCT FROM {}", is_not_of="{} IS DISTINCT FROM {}", indexed_by_of="")


class ReportStore(Protocol):
    """What the reports read of a store: `Store` (SQLite) and `PgStore` both give it."""

    dialect: Dialect
    queue: RunQueue

    def read(self, sql: str, args: Args = ()) -> Any:
        """A cursor over the rows of a query written for SQLite: rows are indexed by position
        and by column name, times are ISO text, flags 0 and 1."""
        ...

    def all_workflows(self) -> list[WorkflowSpec]: ...

    def get_workflow(self, name: str) -> WorkflowSpec: ...
