"""Workflow files on disk: which files a path names, reading one (a regular file, not too large,
UTF-8, and as root one that only root can change), and loading several all or nothing.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Sequence
from pathlib import Path

from easyflow_cli.core.errors import SpecError, SpecErrors
from easyflow_cli.core.spec import WorkflowSpec, parse_workflow_text
from easyflow_cli.core.toml_check import KeyLines
from easyflow_cli.core.trust import untrusted_because

MAX_FILE_BYTES = 16 * 2**20


def parse_workflow_file(path: str | Path) -> WorkflowSpec:
    path = Path(path)
    try:
        data = _read_workflow_bytes(path)
    except OSError as exc:
        raise SpecErrors([SpecError(f"cannot read: {exc.strerror}", file=str(path))]) from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise SpecErrors([SpecError("is not UTF-8 text", file=str(path))]) from None
    return parse_workflow_text(text, str(path))


def _read_workflow_bytes(path: Path) -> bytes:
    """The file's bytes, once it is known to be a regular file we may trust.

    The checks use the opened descriptor, so the file cannot be swapped between check and read;
    O_NONBLOCK keeps a FIFO from hanging the open.
    """
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    with os.fdopen(fd, "rb") as handle:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise SpecErrors([SpecError("is not a regular file", file=str(path))])
        if os.geteuid() == 0:
            _refuse_untrusted(path, info)
        data = handle.read(MAX_FILE_BYTES + 1)
    if len(data) > MAX_FILE_BYTES:
        raise SpecErrors([SpecError(f"is larger than {MAX_FILE_BYTES // 2**20} MiB",
                                    file=str(path))])
    return data


def _refuse_untrusted(path: Path, info: os.stat_result) -> None:
    """As root, like cron: a workflow is run with root's rights, so a file (or the directory
    holding it) that another user could change must not be trusted."""
    problems = [f"is {why}" for why in untrusted_because(info)]
    for directory in dict.fromkeys([path.absolute().parent, path.resolve().parent]):
        problems += [f"is in {directory}, which is {why}"
                     for why in untrusted_because(os.stat(directory))]
    if problems:
        raise SpecErrors([SpecError(
            f"{problems[0]}; as root easyflow only reads workflow files that only root can "
            "change (chmod go-w, chown root)", file=str(path))])


def expand_paths(paths: Sequence[str | Path]) -> list[Path]:
    """Files as given; a directory stands for its `*.toml` files, in name order."""
    files: list[Path] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            found = sorted(path.glob("*.toml"))
            if not found:
                raise SpecErrors([SpecError("directory holds no *.toml files", file=str(path))])
            files.extend(found)
        elif path.exists():
            files.append(path)
        else:
            raise SpecErrors([SpecError("no such file or directory", file=str(path))])
    return files


def load_workflow_files(paths: Sequence[str | Path]) -> list[WorkflowSpec]:
    """All or nothing: every file parses and every name is unique, or SpecErrors lists why."""
    errors: list[SpecError] = []
    specs: list[WorkflowSpec] = []
    for path in expand_paths(paths):
        try:
            specs.append(parse_workflow_file(path))
        except SpecErrors as exc:
            errors.extend(exc.errors)
    first_file: dict[str, str | None] = {}
    for spec in specs:
        if spec.name in first_file:
            errors.append(_duplicate_name(spec, first_file[spec.name]))
        else:
            first_file[spec.name] = spec.source_file
    if errors:
        raise SpecErrors(errors)
    return specs


def _duplicate_name(spec: WorkflowSpec, first_file: str | None) -> SpecError:
    text = Path(spec.source_file).read_text() if spec.source_file else ""
    return SpecError(f"duplicate workflow name {spec.name!r} (also in {first_file})",
                     file=spec.source_file, line=KeyLines(text).line_of(("name",)),
                     field="name")

