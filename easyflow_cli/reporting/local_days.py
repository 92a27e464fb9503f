"""Runs by local day: `report costs --by day` counts on the same days as `--since` and
`--until` dates, which are local.

SQL groups by UTC day, off an index that holds it (no sort of a million runs). A UTC day holds
the start of one local day (of two or none where a 23- or 25-hour local day begins close to
it), so SQL also sums, grouped alike, the runs finished before each UTC time of day at which
a local day begins; here each UTC day's sums are cut there and given to their local days.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from typing import Any

from easyflow_cli.storage.dialect import Dialect
from easyflow_cli.storage.summaries import CHARGE_SUMS, COST_SUMS

# Each sum of a cost row as an aggregate of a value, counting only the runs a condition keeps
# (kept with the summaries, which hold the same sums per hour).
SUMS = COST_SUMS
FIELDS = tuple(SUMS)
ALL_FIELDS = FIELDS + tuple(CHARGE_SUMS)
ZERO = dict.fromkeys(ALL_FIELDS, 0)
DAY_START_UTC = "00:00:00.000000"


def sums_sql(sums: dict[str, tuple[str, str, str | None]] = SUMS) -> str:
    """The aggregates of every sum, as SQL columns named after the fields."""
    columns = []
    for field, (aggregate, value, condition) in sums.items():
        inner = f"CASE WHEN {condition} THEN {value} END" if condition else value
        columns.append(f"{aggregate}({inner}) AS {field}")
    return ", ".join(columns)


def before_sql(dialect: Dialect, cut: str) -> str:
    """The runs that finished before a UTC time of day this module wrote (digits, colons and a
    dot, so a literal). Filtering costs one comparison a run: far less than a conditional
    aggregate of each sum would."""
    return f"{dialect.time_of_day('finished_at')} < '{cut}'"


Key = tuple[str, str, Any]  # UTC day, mode, off_peak


@dataclass(frozen=True)
class LocalDays:
    """Where local days begin, over a span of UTC days: for each UTC day, the times of day
    (as `cuts` indexes) at which a local day begins in it, and the local dates they begin."""

    cuts: list[str]
    starts: dict[str, list[tuple[int, str]]]
    first_date: dict[str, str]

    @classmethod
    def between(cls, zone: tzinfo, first: datetime, last: datetime) -> LocalDays:
        """The local days from the one holding `first` to the one holding `last`."""
        beginnings = [(_day_start(day, zone), day) for day in _dates(first, last, zone)]
        cuts = sorted({m.strftime("%H:%M:%S.%f") for m, _ in beginnings} - {DAY_START_UTC})
        starts: dict[str, list[tuple[int, str]]] = {}
        first_date: dict[str, str] = {}
        for moment, day in beginnings:
            utc_day, clock = moment.strftime("%Y-%m-%d"), moment.strftime("%H:%M:%S.%f")
            if clock == DAY_START_UTC:
                first_date[utc_day] = day.isoformat()
            else:
                starts.setdefault(utc_day, []).append((cuts.index(clock), day.isoformat()))
        return cls(cuts, starts, first_date)

    def split(self, rows: Iterable[dict[str, Any]], before: Sequence[dict[Key, dict[str, Any]]]
              ) -> list[dict[str, Any]]:
        """Rows of UTC days (`grp`), and for each cut the same rows' sums before it, as rows
        of local days: those of one local day, mode and tariff added up."""
        merged: dict[Key, dict[str, Any]] = {}
        for row in rows:
            for day, sums in self._parts(row, before):
                key = (day, row["mode"], row["off_peak"])
                into = merged.setdefault(key, {"grp": day, "mode": row["mode"],
                                               "off_peak": row["off_peak"],
                                               **dict.fromkeys(ALL_FIELDS, 0)})
                for field in ALL_FIELDS:
                    into[field] += sums[field]
        return [row for row in merged.values() if row["runs"]]

    def _parts(self, row: dict[str, Any], before: Sequence[dict[Key, dict[str, Any]]]
               ) -> list[tuple[str, dict[str, Any]]]:
        """The UTC day's sums cut where local days begin in it, each with its local date."""
        utc_day, key = row["grp"], (row["grp"], row["mode"], row["off_peak"])
        starts = sorted(self.starts.get(utc_day, []), key=lambda s: self.cuts[s[0]])
        day = self._date_at_start(utc_day, starts)
        parts, done = [], ZERO
        for index, next_day in starts:
            upto = before[index].get(key, ZERO)
            parts.append((day, {f: upto[f] - done[f] for f in ALL_FIELDS}))
            done, day = upto, next_day
        parts.append((day, {f: row[f] - done[f] for f in ALL_FIELDS}))
        return parts

    def _date_at_start(self, utc_day: str, starts: list[tuple[int, str]]) -> str:
        """The local date at 00:00 UTC of a UTC day: the one that begins then, or the day
        before the first that begins later in it, or (none beginning in it) the last one that
        began the day before."""
        if utc_day in self.first_date:
            return self.first_date[utc_day]
        if starts:
            return (date.fromisoformat(starts[0][1]) - timedelta(days=1)).isoformat()
        previous = (date.fromisoformat(utc_day) - timedelta(days=1)).isoformat()
        began = self.starts.get(previous)
        return began[-1][1] if began else self.first_date.get(previous, utc_day)


def _dates(first: datetime, last: datetime, zone: tzinfo) -> Sequence[date]:
    begin = first.astimezone(zone).date() - timedelta(days=1)
    end = last.astimezone(zone).date() + timedelta(days=1)
    return [begin + timedelta(days=n) for n in range((end - begin).days + 1)]


def _day_start(day: date, zone: tzinfo) -> datetime:
    """When a local day begins, in UTC. Where midnight is skipped (a DST gap at 00:00), the
    earlier offset puts 00:00 at the moment of the jump, which is when the day begins."""
    return datetime.combine(day, time(), zone).astimezone(UTC)
