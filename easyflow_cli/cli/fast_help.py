"""`easyflow`, `easyflow --help` and `easyflow -h` without loading Typer (~100 ms here).

The text is what the Typer app prints, generated into `root_help.py`; a test fails when the two
differ. Regenerate it with:  python -m easyflow_cli.cli.fast_help
It is served only in the case it was made for (program name `easyflow`, a help width of 78,
which Click uses whenever the terminal has 80 columns or more); otherwise Typer prints it.
"""

from __future__ import annotations

import os
import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import subprocess

PROG = "easyflow"
MIN_COLUMNS = 80
COMPLETE_VAR = "_EASYFLOW_COMPLETE"  # set, Typer answers a shell-completion request instead


def serve(args: list[str]) -> int | None:
    """Print the root help and return the exit code, or None to leave it to Typer."""
    if args not in ([], ["--help"], ["-h"]) or not _made_for_this_case():
        return None
    from easyflow_cli.cli.root_help import ROOT_HELP

    if args:
        sys.stdout.write(ROOT_HELP)
        sys.stdout.flush()
        return 0
    # Bare `easyflow`: Typer's no_args_is_help shows the help as a usage error.
    sys.stderr.write(ROOT_HELP)
    sys.stderr.flush()
    return 2


def _made_for_this_case() -> bool:
    return (program_name() == PROG and terminal_columns() >= MIN_COLUMNS
            and COMPLETE_VAR not in os.environ)


def program_name() -> str | None:
    """Click's name for a program started as a script (its file name); None for `python -m`,
    whose name Click spells differently."""
    main = sys.modules.get("__main__")
    if getattr(main, "__package__", None) not in (None, ""):
        return None
    return os.path.basename(sys.argv[0])


def terminal_columns() -> int:
    """`shutil.get_terminal_size().columns`, which Click's help width comes from, without
    importing shutil (~10 ms here)."""
    try:
        columns = int(os.environ["COLUMNS"])
    except (KeyError, ValueError):
        columns = 0
    if columns > 0:
        return columns
    try:
        return os.get_terminal_size(sys.__stdout__.fileno()).columns or 80
    except (AttributeError, ValueError, OSError):
        return 80


TYPER_MAIN = f"import sys; sys.argv[0] = {PROG!r}; from easyflow_cli.cli.main import main; main()"


def typer_output(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess:
    """The Typer app run as `easyflow ARGS` in a process of its own (Click's CliRunner would
    force a help width of its own)."""
    import subprocess

    return subprocess.run([sys.executable, "-c", TYPER_MAIN, *args], env=env, text=True,
                          capture_output=True, stdin=subprocess.DEVNULL)


def typer_root_help() -> str:
    """What the Typer app prints for `easyflow --help` on a terminal of 80 columns."""
    env = {k: v for k, v in os.environ.items() if k != COMPLETE_VAR}
    result = typer_output(["--help"], {**env, "COLUMNS": str(MIN_COLUMNS)})
    assert result.returncode == 0, result.stderr
    return result.stdout


def module_text(help_text: str) -> str:
    lines = "".join(f"    {line!r},\n" for line in help_text.splitlines(keepends=True))
    return (f'"""Generated from the Typer app by `python -m easyflow_cli.cli.fast_help`: '
            f'do not edit."""\n\nROOT_HELP = "".join([\n{lines}])\n')


MODULE_PATH = os.path.join(os.path.dirname(__file__), "root_help.py")

if __name__ == "__main__":
    with open(MODULE_PATH, "w") as out:
        out.write(module_text(typer_root_help()))
    print(f"wrote {MODULE_PATH}")
