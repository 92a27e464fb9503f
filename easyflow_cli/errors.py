"""Exceptions the core raises; only the CLI turns them into messages and exit codes."""

from __future__ import annotations


class EasyflowError(Exception):
    """Base class. `exit_code` is what the CLI exits with when this reaches it."""

    exit_code = 1


class BadInput(EasyflowError):
    """The user gave us something we cannot accept (exit code 2, nothing written)."""

    exit_code = 2


class SpecError(BadInput):
    """A problem in a workflow file, located as precisely as we can."""

    def __init__(
        self, message: str, *, file: str | None = None, line: int | None = None,
        field: str | None = None,
    ) -> None:
        self.message = message
        self.file = file
        self.line = line
        self.field = field
        super().__init__(str(self))

    def __str__(self) -> str:
        where = self.file or "<input>"
        if self.line is not None:
            where += f":{self.line}"
        if self.field:
            return f"{where}: {self.field}: {self.message}"
        return f"{where}: {self.message}"


class SpecErrors(BadInput):
    """Several problems found in one pass, reported together."""

    def __init__(self, errors: list[SpecError]) -> None:
        self.errors = errors
        super().__init__("\n".join(str(e) for e in errors))


class NotFound(BadInput):
    """An unknown workflow, run or schedule."""


class DaemonUnavailable(EasyflowError):
    """No daemon is answering on the socket."""
