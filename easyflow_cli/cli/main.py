"""The `easyflow` command, and its console script's entry: the Typer app that wires the command
groups (errors become exit codes in `group`)."""

from __future__ import annotations

import typer

from easyflow_cli import __version__
from easyflow_cli.cli import bench as bench_cli
from easyflow_cli.cli import daemon as daemon_cli
from easyflow_cli.cli import demo as demo_cli
from easyflow_cli.cli import metrics as metrics_cli
from easyflow_cli.cli import notify as notify_cli
from easyflow_cli.cli import report as report_cli
from easyflow_cli.cli import run as run_cli
from easyflow_cli.cli import runs as runs_cli
from easyflow_cli.cli import schedule as schedule_cli
from easyflow_cli.cli import simulate as simulate_cli
from easyflow_cli.cli import why as why_cli
from easyflow_cli.cli import worker as worker_cli
from easyflow_cli.cli import workflow as workflow_cli
from easyflow_cli.cli.group import HELP_OPTION_NAMES, EasyflowGroup

# Plain (Click) help in every group: Typer's Rich help would import rich.markdown and
# markdown-it, the largest part of what `easyflow --help` would load.
app = typer.Typer(
    cls=EasyflowGroup, no_args_is_help=True, add_completion=False, rich_markup_mode=None,
    help="easyflow: a cost-aware workflow scheduler. Register workflows from TOML, run them "
         "now or on a schedule, in real-time, balanced or eco mode.",
    context_settings={"help_option_names": HELP_OPTION_NAMES},
)
app.add_typer(workflow_cli.app, name="workflow")
app.add_typer(runs_cli.app, name="runs")
app.add_typer(schedule_cli.app, name="schedule")
app.add_typer(report_cli.app, name="report")
app.add_typer(notify_cli.notify_app, name="notify")
app.add_typer(notify_cli.notifications_app, name="notifications")
app.command("run")(run_cli.run)
app.command("logs")(runs_cli.logs)
app.command("daemon")(daemon_cli.daemon)
app.command("status")(daemon_cli.status)
app.command("metrics")(metrics_cli.metrics)
app.command("demo")(demo_cli.demo)
app.command("bench")(bench_cli.bench)
app.command("simulate")(simulate_cli.simulate)
app.command("why")(why_cli.why)
app.command("worker")(worker_cli.worker)


def _version(value: bool) -> None:
    if value:
        print(f"easyflow {__version__}")
        raise typer.Exit()


@app.callback()
def root(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True,
                                 help="Show the version and exit."),
) -> None:
    """easyflow: a cost-aware workflow scheduler."""


def main() -> None:
    app()
