"""Following a run: output above the status line, whole lines, colours kept."""

from __future__ import annotations

import io
from dataclasses import replace
from datetime import UTC, datetime, timedelta

from rich.console import Console

from easyflow_cli.cli.follow import LinesAbove, _describe
from easyflow_cli.core.model import CostPriority, Mode, ModeReason, Run, RunState, Trigger


def test_whole_lines_go_above_and_a_partial_one_waits_for_its_end() -> None:
    out = io.StringIO()
    above = LinesAbove(Console(file=out, force_terminal=True, width=20, color_system=None))
    above.write(b"first li")
    assert out.getvalue() == ""  # a partial line would be wiped by the next refresh
    above.write(b"ne\r\nsecond line that is longer than the console\nthi")
    assert out.getvalue() == "first line\nsecond line that is longer than the console\n"
    above.close()
    assert out.getvalue().endswith("\nthi\n")


def test_colours_of_the_output_are_kept() -> None:
    out = io.StringIO()
    above = LinesAbove(Console(file=out, force_terminal=True, color_system="standard"))
    above.write(b"\x1b[31mred\x1b[0m plain\n")
    assert out.getvalue() == "\x1b[31mred\x1b[0m plain\n"


def test_the_status_line_says_when_a_waiting_run_starts() -> None:
    now = datetime.now(UTC)
    later = now + timedelta(hours=10, minutes=12, seconds=30)
    run = Run(3, "nightly", Trigger.MANUAL, Mode.ECO, ModeReason.WORKFLOW, CostPriority.NORMAL,
              None, RunState.QUEUED, now, not_before=later)
    assert _describe(run, 3.25).startswith("run 3 waiting in the eco queue (3.2s): it starts ")
    assert _describe(run, 3.25).endswith(", in 10h12m")
    assert _describe(replace(run, not_before=None), 3.25) == (
        "run 3 waiting in the eco queue (3.2s)")
