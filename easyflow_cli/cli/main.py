"""The root `easyflow` command: it only wires the command groups and maps errors to exit codes."""

from __future__ import annotations

from typing import NoReturn

import typer
from typer.core import TyperGroup

from easyflow_cli import __version__
from easyflow_cli.cli import bench as bench_cli
from easyflow_cli.cli import daemon as daemon_cli
from easyflow_cli.cli import demo as demo_cli
from easyflow_cli.cli import report as report_cli
from easyflow_cli.cli import run as run_cli
from easyflow_cli.cli import runs as runs_cli
from easyflow_cli.cli import schedule as schedule_cli
from easyflow_cli.cli import workflow as workflow_cli
from easyflow_cli.cli.failures import print_error, report_core_error

try:  # recent Typer releases carry their own copy of Click
    from typer._click.exceptions import NoArgsIsHelpError, UsageError
except ImportError:  # pragma: no cover - older Typer uses Click itself
    from click.exceptions import NoArgsIsHelpError, UsageError

HELP_OPTION_NAMES = ["-h", "--help"]


class EasyflowGroup(TyperGroup):
    """Turns core errors into one clear line on stderr and the documented exit code."""

    def make_context(self, info_name, args, parent=None, **extra):
        defer_typer_coercion(self)
        return super().make_context(info_name, args, parent=parent, **extra)

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except NoArgsIsHelpError:
            raise
        except UsageError as exc:
            _usage_error(exc)
        except Exception as exc:
            code = report_core_error(exc)
            if code is None:
                raise
            raise typer.Exit(code) from None

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
    print_error(f"{exc.format_message()} (see `{where} --help`)")
    raise typer.Exit(2) from None


class _DeferredCoercion:
    """Stands in for Typer's per-parameter coercion until a value needs it.

    Typer builds a pydantic TypeAdapter for every parameter it processes, even one left at
    None, and importing pydantic costs ~100 ms: most of what `run NAME --now --no-wait` may
    take. An option left out (None) and a plain string need nothing done; anything else goes
    to Typer's own coercion, built on first use, so values and errors stay exactly Typer's.
    """

    def __init__(self) -> None:
        self.typer_coercion = None

    def coerce(self, value, param, ctx):
        single = param.nargs == 1 and not param.multiple
        descriptor = param.type_descriptor
        if single and value is None:
            return None
        if (single and isinstance(value, str) and descriptor.annotation is str
                and descriptor.parameter_info.parser is None):
            return value
        if self.typer_coercion is None:
            from typer._coercion import build_runtime_param

            self.typer_coercion = build_runtime_param(descriptor)
        return self.typer_coercion.coerce(value, param=param, ctx=ctx)


def defer_typer_coercion(command) -> None:
    """Give each parameter of this command tree a `_DeferredCoercion` (once), the help options
    included: a command makes (and keeps) its help option on first use, so make it here, with
    the help option names every context of this app gets."""
    context = command.context_class(command, help_option_names=HELP_OPTION_NAMES)
    help_option = command.get_help_option(context)
    for param in [*command.params, *([help_option] if help_option else [])]:
        if hasattr(param, "type_descriptor") and getattr(param, "_runtime_param", 0) is None:
            param._runtime_param = _DeferredCoercion()
    for sub in getattr(command, "commands", {}).values():
        defer_typer_coercion(sub)


# Plain (click) help in every group: Typer's Rich help imports rich.markdown and markdown-it,
# ~50 ms, half of what `easyflow --help` may take in all.
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
app.command("run")(run_cli.run)
app.command("logs")(runs_cli.logs)
app.command("daemon")(daemon_cli.daemon)
app.command("status")(daemon_cli.status)
app.command("demo")(demo_cli.demo)
app.command("bench")(bench_cli.bench)


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
