"""Exceptions the core raises; only the CLI turns them into messages and exit codes."""

from __future__ import annotations

SHOWN_CHARS = 60


def printable(text: str) -> str:
    """`text` with control characters escaped, so a message stays one line and cannot drive
    the terminal (a hostile key may hold an escape sequence or a newline)."""
    if text.isprintable():
        return text
    return "".join(ch if ch.isprintable() else repr(ch)[1:-1] for ch in text)


def shown(value: object, limit: int = SHOWN_CHARS) -> str:
    """`repr(value)` cut to `limit` characters: a 3 MB value must not become a 3 MB message."""
    text = repr(value)
    if len(text) <= limit:
        return text
    if isinstance(value, str):
        return f"{repr(value[:limit])[:-1]}...' ({len(value)} characters)"
    return f"{text[:limit]}..."


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
        where = printable(self.file or "<input>")
        if self.line is not None:
            where += f":{self.line}"
        if self.field:
            return f"{where}: {printable(self.field)}: {printable(self.message)}"
        return f"{where}: {printable(self.message)}"


class SpecErrors(BadInput):
    """Several problems found in one pass, reported together."""

    def __init__(self, errors: list[SpecError]) -> None:
        self.errors = errors
        super().__init__("\n".join(str(e) for e in errors))


class NotFound(BadInput):
    """An unknown workflow, run or schedule."""


class DamagedRow(EasyflowError):
    """A stored value easyflow never writes: the database was changed by other means."""

    def __init__(self, run_id: int | None, field: str, value: object) -> None:
        self.run_id = run_id
        self.field = field
        super().__init__(f"run {run_id}: its {field} is {printable(shown(value))}, which "
                         "easyflow never writes (the database was changed by other means); "
                         "correct or delete that run")
