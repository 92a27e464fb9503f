"""One renderer for every listing: a Rich table, `--json` or `--csv`.

Data goes to stdout, talk to stderr, so `--json` output stays clean.
"""

from __future__ import annotations

import csv
import json
import sys
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import typer

if TYPE_CHECKING:
    from rich.console import Console

Formatter = Callable[[Any], str]

def say(text: str) -> None:
    """A plain line of talk on stderr."""
    sys.stderr.write(text + "\n")
    sys.stderr.flush()


def print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, default=str) + "\n")


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

JSON_OPTION = typer.Option(False, "--json", help="Print one JSON document and nothing else.")
CSV_OPTION = typer.Option(False, "--csv", help="Print CSV with a header row.")


def print_csv(rows: Sequence[dict[str, Any]], columns: Sequence[str]) -> None:
    writer = csv.DictWriter(sys.stdout, fieldnames=list(columns), extrasaction="ignore")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: _csv_value(row.get(k)) for k in columns})


def _csv_value(value: Any) -> Any:
    return json.dumps(value) if isinstance(value, dict | list) else value


def render_rows(rows: Sequence[dict[str, Any]], columns: Sequence[str], *, as_json: bool,
                as_csv: bool, title: str | None = None, empty: str = "nothing to show",
                formatters: dict[str, Formatter] | None = None) -> None:
    """`--json` prints the rows as they are; the table shows `columns`, formatted for reading."""
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
    for row in rows:
        table.add_row(*(_cell(row.get(c), formatters.get(c)) for c in columns))
    console.print(table)


def _cell(value: Any, formatter: Formatter | None) -> str:
    if formatter is not None:
        return formatter(value)
    if value is None:
        return "-"
    return str(value)


def short_time(value: str | None) -> str:
    """ISO UTC → local 'YYYY-MM-DD HH:MM:SS' for tables (JSON keeps the ISO text)."""
    if not value:
        return "-"
    from easyflow_cli.core.timeutil import from_iso

    return from_iso(value).astimezone().strftime("%Y-%m-%d %H:%M:%S")


def seconds(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:.3f}s" if value < 10 else f"{value:.1f}s"
