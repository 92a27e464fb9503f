"""One renderer for every listing: a Rich table, `--json` or `--csv`.

Data goes to stdout, talk to stderr, so `--json` output stays clean.
"""

from __future__ import annotations

import json
import math
import os
import re
import sys
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager, nullcontext
from typing import TYPE_CHECKING, Any

import typer

if TYPE_CHECKING:
    from rich.console import Console

Formatter = Callable[[Any], str]
RowFormatter = Callable[[dict[str, Any]], str]

def say(text: str) -> None:
    """A plain line of talk on stderr."""
    sys.stderr.write(text + "\n")
    sys.stderr.flush()


def print_json(data: Any) -> None:
    sys.stdout.write(json_text(data) + "\n")


def json_text(data: Any, indent: int | None = 2) -> str:
    """`data` as JSON whose numbers never use an exponent: a cost of 2.83e-05 is written
    0.0000283, every digit kept."""
    # The json module has no public way to choose how a float is written: such a number goes
    # through it as a string between marks no data holds (a fresh random one each time), then
    # marks and quotes are taken off.
    mark = os.urandom(8).hex()
    text = json.dumps(_marked_numbers(data, mark), indent=indent, default=str)
    return re.sub(f'"{mark}(-?[0-9.]+){mark}"', r"\1", text)


def _marked_numbers(data: Any, mark: str) -> Any:
    if isinstance(data, float):
        return f"{mark}{plain_number(data)}{mark}" if _has_exponent(data) else data
    if isinstance(data, dict):
        return {key: _marked_numbers(value, mark) for key, value in data.items()}
    if isinstance(data, list | tuple):
        return [_marked_numbers(value, mark) for value in data]
    return data


def plain_number(value: float) -> str:
    """A float in plain decimal digits, as many as Python's shortest exact form has."""
    from decimal import Decimal

    return format(Decimal(repr(value)), "f") if _has_exponent(value) else repr(value)


def _has_exponent(value: float) -> bool:
    return math.isfinite(value) and "e" in repr(value)


def print_line(text: object) -> None:
    """One line of data on stdout, flushed, as `typer.echo` writes it."""
    sys.stdout.write(f"{text}\n")
    sys.stdout.flush()


class LazyConsole:
    """A Rich console made on first use: `easyflow --help` and `run --now --no-wait` need no
    Rich, and importing it would be most of what they load."""

    def __init__(self, *, stderr: bool = False) -> None:
        self._stderr = stderr
        self._console: Console | None = None

    def __getattr__(self, name: str) -> Any:
        if self._console is None:
            self._console = _make_console(self._stderr)
        return getattr(self._console, name)


def _make_console(stderr: bool) -> Console:
    from rich.console import Console

    if stderr:
        return Console(stderr=True, soft_wrap=True)
    console = Console()
    if not console.is_terminal:
        # Piped output is not cut to 80 columns: a table nobody can read helps no one.
        console = Console(width=250)
    return console


console = LazyConsole()
err_console = LazyConsole(stderr=True)


def busy(text: str) -> AbstractContextManager[Any]:
    """A spinner on stderr while something slow runs, when stderr is a terminal; otherwise
    nothing, and no Rich loaded: a script reading `--json` sees no spinner either way."""
    if not sys.stderr.isatty():
        return nullcontext()
    return err_console.status(text)

JSON_OPTION = typer.Option(False, "--json", help="Print one JSON document and nothing else.")
CSV_OPTION = typer.Option(False, "--csv", help="Print CSV with a header row.")


def print_csv(rows: Sequence[dict[str, Any]], columns: Sequence[str]) -> None:
    import csv

    writer = csv.DictWriter(sys.stdout, fieldnames=list(columns), extrasaction="ignore")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: _csv_value(row.get(k)) for k in columns})


def _csv_value(value: Any) -> Any:
    """As JSON writes it where Python's str() would not: true/false, and lists and tables as
    JSON text. None is an empty cell, as the csv module writes it."""
    if isinstance(value, dict | list | bool):
        return json_text(value, indent=None)
    return plain_number(value) if isinstance(value, float) else value


def render_rows(rows: Sequence[dict[str, Any]], columns: Sequence[str], *, as_json: bool,
                as_csv: bool, title: str | None = None, empty: str = "nothing to show",
                formatters: dict[str, Formatter] | None = None,
                row_formatters: dict[str, RowFormatter] | None = None) -> None:
    """`--json` prints the rows as they are; the table shows `columns`, formatted for reading
    (a formatter gets the cell's value; a row formatter, for cells that depend on others, the
    whole row)."""
    if as_json:
        print_json(list(rows))
        return
    if as_csv:
        print_csv(rows, columns)
        return
    if not rows:
        err_console.print(empty)
        return
    from rich.table import Table

    table = Table(title=title, header_style="bold")
    for column in columns:
        table.add_column(column)
    formatters = formatters or {}
    row_formatters = row_formatters or {}
    for row in rows:
        table.add_row(*(row_formatters[c](row) if c in row_formatters
                        else _cell(row.get(c), formatters.get(c)) for c in columns))
    console.print(table)


def _cell(value: Any, formatter: Formatter | None) -> str:
    if formatter is not None:
        return formatter(value)
    return plain(value)


def plain(value: Any) -> str:
    """A value in a table cell: `-` for none, true/false as JSON and CSV write them."""
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


TIME_FORMAT = "%Y-%m-%d %H:%M:%S %Z"


def short_time(value: str | None) -> str:
    """ISO UTC → local time with its zone abbreviation, for people (JSON and CSV keep the ISO
    text): `2026-12-02 03:00:00 CET`."""
    if not value:
        return "-"
    from easyflow_cli.core.timeutil import from_iso

    return from_iso(value).astimezone().strftime(TIME_FORMAT)


def zone_time(value: str | None, zone: str | None, *, also_local: bool = True) -> str:
    """A schedule's time in its own zone, and in local time too when the two read differently
    at that moment, as `systemd-analyze calendar` shows them: `2026-12-03 03:00:00 CET
    (2026-12-02 21:00:00 EST)`. No zone means local time."""
    if not value or zone is None:
        return short_time(value)
    from zoneinfo import ZoneInfo

    from easyflow_cli.core.timeutil import from_iso

    moment = from_iso(value)
    own, local = moment.astimezone(ZoneInfo(zone)), moment.astimezone()
    shown_own = own.strftime(TIME_FORMAT)
    if not also_local or (own.utcoffset() == local.utcoffset()
                          and own.tzname() == local.tzname()):
        return shown_own
    return f"{shown_own} ({local.strftime(TIME_FORMAT)})"


def past_fire(daemon_up: bool) -> str:
    """What a schedule's fire time already past means: the daemon fires it now; with none up,
    it waits for one (missed slots fire once, not once each)."""
    return "due now" if daemon_up else "overdue: fires once, when the daemon starts"


def seconds(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:.3f}s" if value < 10 else f"{value:.1f}s"
