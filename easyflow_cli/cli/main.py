"""The root `easyflow` command: it only wires the command groups and maps errors to exit codes."""

from __future__ import annotations

import sqlite3
from typing import NoReturn

import typer
from typer.core import TyperGroup

from easyflow_cli import __version__
from easyflow_cli.cli import daemon as daemon_cli
from easyflow_cli.cli import report as report_cli
from easyflow_cli.cli import run as run_cli
from easyflow_cli.cli import runs as runs_cli
from easyflow_cli.cli import schedule as schedule_cli
from easyflow_cli.cli import workflow as workflow_cli
from easyflow_cli.cli.output import err_console
from easyflow_cli.errors import EasyflowError, printable

try:  # recent Typer releases carry their own copy of Click
    from typer._click.exceptions import NoArgsIsHelpError, UsageError
except ImportError:  # pragma: no cover - older Typer uses Click itself
    from click.exceptions import NoArgsIsHelpError, UsageError


class EasyflowGroup(TyperGroup):
    """Turns core errors into one clear line on stderr and the documented exit code."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except EasyflowError as exc:
            for line in str(exc).splitlines():
                _print_error(line)
            raise typer.Exit(exc.exit_code) from None
        except NoArgsIsHelpError:
            raise
        except UsageError as exc:
            _usage_error(exc)
        except sqlite3.Error as exc:
            _print_error(f"database: {exc}")
            raise typer.Exit(1) from None

    def parse_args(self, ctx, args):
        """The root's own options (`easyflow --bogus`) are parsed here, outside `invoke`."""
        try:
            return super().parse_args(ctx, args)
        except NoArgsIsHelpError:
            raise
        except UsageError as exc:
            _usage_error(exc)


def _usage_error(exc: UsageError) -> NoReturn:
    # Click's own report is a framed box over several lines; ours is one line, like every other
    # bad-input error, and says where the help is.
    where = exc.ctx.command_path if exc.ctx else "easyflow"
    _print_error(f"{exc.format_message()} (see `{where} --help`)")
    raise typer.Exit(2) from None


def _print_error(line: str) -> None:
    err_console.print(f"error: {printable(line)}", markup=False, highlight=False)


app = typer.Typer(
    cls=EasyflowGroup, no_args_is_help=True, add_completion=False,
    help="easyflow: a cost-aware workflow scheduler. Register workflows from TOML, run them "
         "now or on a schedule, in real-time, balanced or eco mode.",
    context_settings={"help_option_names": ["-h", "--help"]},
)
app.add_typer(workflow_cli.app, name="workflow")
app.add_typer(runs_cli.app, name="runs")
app.add_typer(schedule_cli.app, name="schedule")
app.add_typer(report_cli.app, name="report")
app.command("run")(run_cli.run)
app.command("logs")(runs_cli.logs)
app.command("daemon")(daemon_cli.daemon)
app.command("status")(daemon_cli.status)


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
