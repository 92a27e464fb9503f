"""`report ... --svg`: headed by its title and period, each character placed at its column."""

from __future__ import annotations

import html
import re
from collections import defaultdict
from pathlib import Path

from rich.table import Table

from easyflow_cli.cli.output import short_time
from easyflow_cli.cli.svg import describe_period, save_report_svg

SPAN = re.compile(r'<tspan x="([\d.]+)">([^<]*)</tspan>')
TEXT = re.compile(r'<text class="[^"]*" x="[\d.]+" y="([\d.]+)"[^>]*>'
                  r"((?:<tspan[^>]*>[^<]*</tspan>)*)</text>")
CELL = 20 * 0.61


def screen(svg: str) -> dict[float, dict[int, str]]:
    """Per line (its y): the character drawn at each column, from the x it is placed at."""
    lines: dict[float, dict[int, str]] = defaultdict(dict)
    for y, spans in TEXT.findall(svg):
        for x, char in SPAN.findall(spans):
            column = float(x) / CELL
            assert abs(column - round(column)) < 1e-6, f"{char!r} at x={x} is between columns"
            lines[float(y)][round(column)] = char.replace("&#160;", " ")
    return lines


def svg_text(svg: str) -> list[str]:
    """The lines of text the image shows, top to bottom."""
    return [text_of(line) for _, line in sorted(screen(svg).items())]


def text_of(line: dict[int, str]) -> str:
    return "".join(line.get(c, " ") for c in range(max(line) + 1)).rstrip()


def table() -> Table:
    table = Table(title="Cost by mode")
    for column in ("mode", "runs", "cost"):
        table.add_column(column, justify="left" if column == "mode" else "right")
    table.add_row("real-time", "7", "$0.000124")
    table.add_row("balanced", "12345", "$0.00")
    table.add_row("total", "12352", "$0.000125", style="bold")
    return table


def test_heading_and_period(tmp_path: Path) -> None:
    path = tmp_path / "r.svg"
    period = {"since": "2026-11-25T00:00:00Z", "until": None, "workflow": "nightly"}
    save_report_svg(table(), path, "easyflow report costs", period)
    svg = path.read_text()
    described = f"runs from {short_time('2026-11-25T00:00:00Z')} up to now, workflow nightly"
    assert describe_period(period) == described
    window_title = f"easyflow report costs · {described}</text>"
    assert window_title in html.unescape(svg).replace("\xa0", " ")
    lines = svg_text(svg)
    assert lines[:2] == ["easyflow report costs", described]
    assert describe_period({"since": None, "until": None, "workflow": None}) == (
        "all runs up to now")


def test_columns_line_up_in_every_row(tmp_path: Path) -> None:
    path = tmp_path / "r.svg"
    save_report_svg(table(), path, "t", {"since": None, "until": None, "workflow": None})
    rows = [line for _, line in sorted(screen(path.read_text()).items())]
    bordered = [row for row in rows if row.get(0) in ("┃", "│", "┏", "┡", "└")]
    assert len(bordered) >= 6
    borders = {frozenset(c for c, char in row.items() if char in "┃│┏┳┓┡╇┩└┴┘") for row in bordered}
    assert len(borders) == 1, borders  # every row has its separators in the same columns
    # Right-justified numbers end in the same column.
    ends = {max(c for c, char in row.items() if char.isdigit()) for row in bordered
            if any(char.isdigit() for char in row.values())}
    assert len(ends) == 1
