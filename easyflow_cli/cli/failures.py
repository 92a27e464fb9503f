"""How a core error reaches the user: one line on stderr (`error: ...`) and its exit code."""

from __future__ import annotations

import sys

from easyflow_cli.cli.output import err_console
from easyflow_cli.core.errors import EasyflowError, printable


def report_core_error(exc: BaseException) -> int | None:
    """Print a core or database error; its exit code, or None when `exc` is neither."""
    if isinstance(exc, EasyflowError):
        for line in str(exc).splitlines():
            print_error(line)
        return exc.exit_code
    if is_database_error(exc):
        print_error(f"database: {exc}" + ("; the database file is damaged: restore it from a "
                                          "backup" if is_damage(exc) else ""))
        return 1
    return None


# SQLITE_CORRUPT and SQLITE_NOTADB: what a query that reaches a damaged page raises.
DAMAGE_CODES = (11, 26)


def is_damage(exc: BaseException) -> bool:
    return (getattr(exc, "sqlite_errorcode", 0) & 0xFF) in DAMAGE_CODES


def print_error(line: str) -> None:
    err_console.print(f"error: {printable(line)}", markup=False, highlight=False)


def is_database_error(exc: BaseException) -> bool:
    # sqlite3 is not imported for `--help`; if it was never loaded, this is no database error.
    sqlite3 = sys.modules.get("sqlite3")
    return sqlite3 is not None and isinstance(exc, sqlite3.Error)


def exit_code_of(exc: Exception) -> int:
    """The exit code the Typer app ends with when a command raises `exc`, after printing what
    it prints; anything it would not catch is raised again."""
    import typer

    if isinstance(exc, typer.Exit):
        return exc.exit_code
    code = report_core_error(exc)
    if code is None:
        raise exc
    return code
