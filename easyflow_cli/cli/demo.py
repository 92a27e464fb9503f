"""`easyflow demo`: the examples through a real daemon in every mode, then what they cost."""

from __future__ import annotations

from pathlib import Path

import typer

from easyflow_cli.cli.output import err_console
from easyflow_cli.core.paths import state_dir


def demo(
    paths: list[Path] | None = typer.Argument(None, help="Workflow files or directories "
                                                  "(default: config/workflows)."),
    timeout: float = typer.Option(60.0, "--timeout", min=1,
                                  help="Stop waiting for the runs after this many seconds."),
) -> None:
    """Register the examples, run each once in every mode through a daemon, show the reports.

    Uses the state directory ($EASYFLOW_HOME): point it at a new directory to try easyflow.
    """
    from easyflow_cli.cli import report as report_cli
    from easyflow_cli.cli import runs as runs_cli
    from easyflow_cli.tools.demo import run_demo

    home = state_dir()
    err_console.print(f"easyflow demo in {home}", highlight=False)
    run_demo(home, paths or [Path("config/workflows")], timeout,
             lambda text: err_console.print(text, highlight=False))
    runs_cli.list_(workflow=None, state=None, limit=50, as_json=False, as_csv=False)
    report_cli.costs(by="mode", since=None, until=None, workflow=None, as_json=False,
                     as_csv=False, svg=None)
    report_cli.latency(since=None, until=None, workflow=None, as_json=False, as_csv=False,
                       svg=None)
