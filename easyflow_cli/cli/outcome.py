"""How a command that waited for a run ends: one line saying how the run went, and the exit
code scripts read (`run --now`, `runs retry`, `logs -f`).

The rule: 0 when the run (its last attempt) succeeded; 1 when it failed, timed out or was
cancelled; 130 when Ctrl-C stopped the following (not the run). The step's own exit code is in
the run record (`exit_code`) and in the error the last line shows.
"""

from __future__ import annotations

from typing import NoReturn

import typer

from easyflow_cli.cli.output import err_console, print_json
from easyflow_cli.core.model import Run, RunState

SUCCEEDED_EXIT = 0
NOT_SUCCEEDED_EXIT = 1
# 128 + SIGINT, as a shell reports a command stopped by Ctrl-C: this process stopped following
# the run, which goes on.
INTERRUPTED_EXIT = 130


def exit_code_of(run: Run) -> int:
    return SUCCEEDED_EXIT if run.state is RunState.SUCCEEDED else NOT_SUCCEEDED_EXIT


def ended_line(run: Run) -> str:
    """`run 12 (attempt 3) failed in 0.52s: step 'fetch' exited with code 3` (Rich markup)."""
    from rich.markup import escape

    style = "green" if run.state is RunState.SUCCEEDED else "red"
    attempt = f" (attempt {run.attempt})" if run.attempt > 1 else ""
    return (f"run {run.id}{attempt} [{style}]{run.state.value}[/{style}] in "
            f"{run.duration_s or 0:.2f}s" + (f": {escape(run.error)}" if run.error else ""))


def stop_following(run_id: int) -> NoReturn:
    """Ctrl-C while following a run the daemon executes: the run goes on without us."""
    from easyflow_cli.cli.output import say

    say(f"stopped following run {run_id}; it goes on (easyflow logs -f {run_id})")
    raise typer.Exit(INTERRUPTED_EXIT)


def report_end(run: Run, as_json: bool) -> NoReturn:
    """The run record on stdout (with `--json`), the line on stderr, then exit by the rule."""
    if as_json:
        print_json(run.to_record())
    err_console.print(ended_line(run), highlight=False)
    raise typer.Exit(exit_code_of(run))
