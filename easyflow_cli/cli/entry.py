"""The `easyflow` command. A few common invocations are answered without loading Typer.

`easyflow`, `easyflow --help`, `easyflow -h` (`fast_help`) and `easyflow run NAME --now
--no-wait` with a daemon up (`fast_run`) are what people and scripts run most, and Typer takes
longer to import than they may take in all. Everything else, and anything those modules do not
recognise exactly, goes to the Typer app in `main`.
"""

from __future__ import annotations

import os
import sys


def main() -> None:
    args = sys.argv[1:]
    try:
        code = fast_path(args)
    except KeyboardInterrupt:
        code = 130  # what Typer's app exits with
    except BrokenPipeError:
        code = _after_broken_pipe()
    if code is None:
        from easyflow_cli.cli.main import main as typer_main

        typer_main()
        return
    sys.exit(code)


def fast_path(args: list[str]) -> int | None:
    """The exit code of a command handled here, or None for the Typer app to handle it."""
    if args[:1] == ["run"]:
        from easyflow_cli.cli.fast_run import submit

        return submit(args[1:])
    from easyflow_cli.cli.fast_help import serve

    return serve(args)


def _after_broken_pipe() -> int:
    # As Click does when the reader of our output has gone: exit 1, and no traceback when
    # Python flushes the streams on the way out.
    devnull = os.open(os.devnull, os.O_WRONLY)
    for stream in (sys.stdout, sys.stderr):
        os.dup2(devnull, stream.fileno())
    return 1
