"""The command group every part of the CLI uses: it maps errors to one line and an exit code.

Click reports a usage error as a framed block over several lines, and a core error would be a
traceback; here each becomes one `error: ...` line on stderr, exit 2 for bad input.
"""

from __future__ import annotations

from typing import Any, NoReturn

import typer
from typer.core import TyperGroup

from easyflow_cli.cli.failures import print_error, report_core_error

HELP_OPTION_NAMES = ["-h", "--help"]
RESOLVED_PATH = "easyflow.resolved_command_path"  # in ctx.meta, shared by a context's children
USAGE_EXIT_CODE = 2  # Click's usage errors, and only they, exit with this code
# Typer passes Click's own Context, which it does not export under a public name
# (`typer.Context` is a subclass of it that groups never receive).
ClickContext = Any


class EasyflowGroup(TyperGroup):
    """A Typer group whose errors are one clear line on stderr and the documented exit code."""

    def parse_args(self, ctx: ClickContext, args: list[str]) -> list[str]:
        """The group's own arguments (`easyflow --bogus`) are parsed here, outside `invoke`."""
        if not args and self.no_args_is_help and not ctx.resilient_parsing:
            show_help_as_usage_error(ctx)
        try:
            return super().parse_args(ctx, args)
        except typer.TyperException as exc:
            raise_usage_error(exc, ctx.command_path)

    def resolve_command(self, ctx: ClickContext, args: list[str]) -> tuple[Any, Any, list[str]]:
        """The command about to parse its arguments, remembered: Click's parser reports some
        errors (`--at` with no value) without saying in which command."""
        name, command, rest = super().resolve_command(ctx, args)
        ctx.meta[RESOLVED_PATH] = f"{ctx.command_path} {name}"
        return name, command, rest

    def invoke(self, ctx: ClickContext) -> Any:
        try:
            return super().invoke(ctx)
        except typer.TyperException as exc:
            raise_usage_error(exc, ctx.meta.get(RESOLVED_PATH, ctx.command_path))
        except typer.Exit:
            raise
        except Exception as exc:
            code = report_core_error(exc)
            if code is None:
                raise
            raise typer.Exit(code) from None


def show_help_as_usage_error(ctx: ClickContext) -> NoReturn:
    """A bare group (`easyflow`, `easyflow runs`): its help on stderr, exit 2, as Click does."""
    typer.echo(ctx.get_help(), err=True, color=ctx.color)
    raise typer.Exit(USAGE_EXIT_CODE)


def raise_usage_error(exc: typer.TyperException, command_path: str) -> NoReturn:
    """One line for a usage error, naming the command (the one whose arguments were parsed,
    else `command_path`) and where its help is; any other Typer error as Typer shows it."""
    if getattr(exc, "exit_code", None) != USAGE_EXIT_CODE:
        raise exc
    from easyflow_cli.cli.param_errors import usage_in_our_words

    where = getattr(getattr(exc, "ctx", None), "command_path", None) or command_path
    print_error(f"{where}: {usage_in_our_words(exc)} (see `{where} --help`)")
    raise typer.Exit(USAGE_EXIT_CODE) from None
