"""A report as an SVG image (`report ... --svg FILE`): headed by what it reports and over which
period, with every character in its own column whatever font the viewer has.

Rich writes each run of text as one `<text>` element and counts on `textLength` to stretch it
to the width its font would take. Renderers that ignore `textLength` (librsvg, and so most
thumbnailers and image converters) draw the run in their own monospace font, a little narrower,
and the columns of a table drift apart. So each character is placed at its own column here.
"""

from __future__ import annotations

import html
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

from easyflow_cli.cli.output import short_time

if TYPE_CHECKING:
    from rich.console import RenderableType

WIDTH = 120  # columns
FONT_SIZE = 20  # pixels: Rich's export default
FONT_ASPECT_RATIO = 0.61  # Rich's default: a character cell is this many font sizes wide
_TEXT_RUN = re.compile(r'<text([^>]*?) x="([\d.]+)"([^>]*?) textLength="[\d.]+"([^>]*)>([^<]*)'
                       r"</text>")


def save_report_svg(renderable: RenderableType, path: Path, title: str,
                    period: dict[str, Any]) -> None:
    """Write the report to `path`, headed by its title and period."""
    from rich.console import Console, Group
    from rich.text import Text

    recorder = Console(record=True, width=WIDTH, file=open("/dev/null", "w"))  # noqa: SIM115
    heading = Text.assemble((title, "bold"), "\n", (describe_period(period), "dim"))
    recorder.print(Group(heading, Text(), renderable))
    svg = recorder.export_svg(title=f"{title} · {describe_period(period)}",
                              font_aspect_ratio=FONT_ASPECT_RATIO)
    path.write_text(place_each_character(svg, FONT_SIZE * FONT_ASPECT_RATIO))


def describe_period(period: dict[str, Any]) -> str:
    """`runs from 2026-11-25 00:00:00 to 2026-12-02 05:03:00, workflow nightly`, or
    `all runs up to now`."""
    since = f"runs from {short_time(period['since'])}" if period.get("since") else "all runs"
    until = f"to {short_time(period['until'])}" if period.get("until") else "up to now"
    workflow = f", workflow {period['workflow']}" if period.get("workflow") else ""
    return f"{since} {until}{workflow}"


def place_each_character(svg: str, cell_width: float) -> str:
    """Each run of text split into one `<tspan>` per character at its column's x (blanks too,
    so that text copied out of the image keeps its spaces)."""

    def split(match: re.Match[str]) -> str:
        before, x, middle, after, body = match.groups()
        start = float(x)
        spans = "".join(f'<tspan x="{start + column * cell_width:g}">{_escape(char)}</tspan>'
                        for column, char in enumerate(html.unescape(body)) if char != "\n")
        return f'<text{before} x="{x}"{middle}{after}>{spans}</text>'

    return _TEXT_RUN.sub(split, svg)


def _escape(char: str) -> str:
    return "&#160;" if char in (" ", "\xa0") else html.escape(char)
