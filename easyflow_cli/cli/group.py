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
            raise_usage_error(exc)

    def invoke(self, ctx: ClickContext) -> Any:
        try:
            return super().invoke(ctx)
        except typer.TyperException as exc:
            raise_usage_error(exc)
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


def raise_usage_error(exc: typer.TyperException) -> NoReturn:
    """One line for a usage error, saying where the help is; any other Typer error as Typer
    shows it."""
    if getattr(exc, "exit_code", None) != USAGE_EXIT_CODE:
        raise exc
    from easyflow_cli.cli.param_errors import in_our_words

    where = getattr(getattr(exc, "ctx", None), "command_path", None) or "easyflow"
    print_error(f"{in_our_words(exc) or exc.format_message()} (see `{where} --help`)")
    raise typer.Exit(USAGE_EXIT_CODE) from None
