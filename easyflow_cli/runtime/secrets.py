"""Secret environment values, read when a run starts and never before.

Two sources: dotenv files (`env_file`, on the workflow or a step) and systemd credentials
(`env = { NAME = { credential = "name" } }`, read from `$CREDENTIALS_DIRECTORY`, which systemd
sets for a unit with `LoadCredential=`). The workflow stores only where a value comes from; the
values live in the executing process for the length of the run, and its log masks them.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field

from easyflow_cli.core.errors import BadInput
from easyflow_cli.core.spec import ENV_NAME_PATTERN, StepSpec, WorkflowSpec
from easyflow_cli.core.trust import check_secret_file

CREDENTIALS_VARIABLE = "CREDENTIALS_DIRECTORY"


class SecretUnavailable(Exception):
    """A secret a run needs cannot be read; the message says which and why."""


@dataclass
class RunSecrets:
    """Each step's variables from its sources, and every secret value (for the log's mask)."""

    by_step: dict[str, dict[str, str]] = field(default_factory=dict)
    values: set[str] = field(default_factory=set)

    def environment(self, step: StepSpec) -> dict[str, str]:
        """The step's declared environment: env files first, then `env`, then credentials."""
        return self.by_step.get(step.name, step.env)


def resolve_secrets(spec: WorkflowSpec, environ: Mapping[str, str]) -> RunSecrets:
    """Read every secret the run's steps use, each file once; SecretUnavailable if one fails."""
    secrets = RunSecrets()
    files: dict[str, dict[str, str]] = {}
    for step in spec.steps:
        variables: dict[str, str] = {}
        for path in (spec.env_file, step.env_file):
            if path is not None:
                if path not in files:
                    files[path] = read_env_file(path)
                variables.update(files[path])
        credentials = {key: read_credential(name, environ)
                       for key, name in step.credentials.items()}
        # Plain `env` values overrule a file's; a credential overrules both.
        secrets.by_step[step.name] = {**variables, **step.env, **credentials}
        secrets.values.update(variables.values(), credentials.values())
    return secrets


def read_env_file(path: str) -> dict[str, str]:
    """A dotenv file's variables, taken literally (no `${...}` expansion)."""
    text = _read_secret(path, f"env_file {path}")
    import io

    from dotenv import dotenv_values  # here: only a workflow with an env_file needs it

    values = dotenv_values(stream=io.StringIO(text), interpolate=False)
    variables = {}
    for name, value in values.items():
        if not ENV_NAME_PATTERN.fullmatch(name):
            raise SecretUnavailable(f"env_file {path}: {name!r} is not a valid environment "
                                    "variable name")
        if value is not None:
            variables[name] = _no_nul(value, f"env_file {path}: {name}")
    return variables


def read_credential(name: str, environ: Mapping[str, str]) -> str:
    """A systemd credential's value (one trailing newline dropped, as `echo` adds one)."""
    directory = environ.get(CREDENTIALS_VARIABLE)
    if not directory:
        raise SecretUnavailable(
            f"credential {name!r}: ${CREDENTIALS_VARIABLE} is not set (run under systemd with "
            f"LoadCredential={name}:/path/to/file in the unit)")
    text = _read_secret(os.path.join(directory, name), f"credential {name!r}")
    return _no_nul(text.removesuffix("\n"), f"credential {name!r}")


def _read_secret(path: str, what: str) -> str:
    try:
        with open(path, "rb") as stream:
            check_secret_file(path, os.fstat(stream.fileno()))
            data = stream.read()
    except OSError as exc:
        raise SecretUnavailable(f"{what}: cannot read {path}: {exc.strerror}") from None
    except BadInput as exc:
        raise SecretUnavailable(f"{what}: {exc}") from None
    try:
        return data.decode()
    except UnicodeDecodeError:
        raise SecretUnavailable(f"{what}: {path} is not UTF-8 text") from None


def _no_nul(value: str, what: str) -> str:
    if "\0" in value:
        raise SecretUnavailable(f"{what}: a value with a NUL byte cannot be passed to a step")
    return value
