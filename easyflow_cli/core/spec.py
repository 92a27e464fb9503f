"""A workflow's TOML → a validated `WorkflowSpec`, with errors that name file, line and field.

The same validation reads a document and a stored spec (`spec_from_dict`), and `spec_to_dict`
writes the canonical form back, so `export` → `add` round-trips exactly. Files on disk are read
by `workflow_files.py`; the TOML checking machinery is `toml_check.py`.
"""

from __future__ import annotations

import functools
import re
import shlex
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import Any

from easyflow_cli.core.durations import format_duration
from easyflow_cli.core.errors import SpecError, SpecErrors, shown
from easyflow_cli.core.model import CostPriority, Mode
from easyflow_cli.core.notify import NotifySpec, check_notify, notify_to_dict
from easyflow_cli.core.timeutil import TimeOutOfRange, parse_time, to_iso
from easyflow_cli.core.toml_check import NUL_MESSAGE, Checker, KeyLines, load_toml, type_name

NAME_PATTERN = re.compile(r"[A-Za-z0-9_-]+")
NAME_MAX = 64
ENV_NAME_PATTERN = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
CALL_PATTERN = re.compile(r"[A-Za-z_]\w*(\.[A-Za-z_]\w*)*:[A-Za-z_]\w*(\.[A-Za-z_]\w*)*")

WORKFLOW_KEYS = (
    "name", "description", "execution_mode", "deadline", "deadline_after", "cost_priority",
    "timeout", "retries", "retry_backoff", "allow_overlap", "max_concurrent", "env_file",
    "keep_runs", "steps", "schedules", "notify",
)
STEP_KEYS = ("name", "run", "call", "args", "shell", "env", "env_file", "cwd", "timeout",
             "continue_on_error")
SCHEDULE_KEYS = ("cron", "every", "at", "timezone", "mode", "deadline_after", "jitter")
SCHEDULE_KINDS = ("cron", "every", "at")
RETRIES_MAX = 100
MAX_CONCURRENT_MAX = 10_000
CREDENTIAL_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.@-]*")


@dataclass(frozen=True)
class StepSpec:
    name: str
    run: tuple[str, ...]
    shell: bool = False
    env: dict[str, str] = field(default_factory=dict)
    cwd: str | None = None
    timeout: float | None = None
    continue_on_error: bool = False
    call: str | None = None  # "package.module:function", run inside the executing process
    args: tuple[str, ...] = ()  # the callable's positional arguments
    # Secret sources, resolved only when the step runs (runtime/secrets.py): a dotenv file's
    # path, and environment variables read from systemd credentials (variable → credential).
    env_file: str | None = None
    credentials: dict[str, str] = field(default_factory=dict)

    def argv(self) -> list[str]:
        """What to execute: the argv itself, or `/bin/sh -c` only when `shell = true`."""
        if self.call:
            return [self.call, *self.args]
        if self.shell:
            return ["/bin/sh", "-c", self.run[0]]
        return list(self.run)


@dataclass(frozen=True)
class ScheduleSpec:
    kind: str
    expr: str
    timezone: str | None = None
    mode: Mode | None = None
    deadline_after: float | None = None
    jitter: float | None = None  # each fire is delayed by a fixed offset within this


@dataclass(frozen=True)
class WorkflowSpec:
    name: str
    steps: tuple[StepSpec, ...]
    description: str = ""
    execution_mode: Mode | None = None
    deadline: datetime | None = None
    deadline_after: float | None = None
    cost_priority: CostPriority = CostPriority.NORMAL
    timeout: float | None = None
    retries: int = 0
    retry_backoff: float | None = None
    allow_overlap: bool = False
    max_concurrent: int | None = None  # runs of this workflow running at once, at most
    env_file: str | None = None  # a dotenv file every step reads (a secret: see StepSpec)
    keep_runs: int | None = None  # finished runs kept in detail (the newest); None: no limit
    schedules: tuple[ScheduleSpec, ...] = ()
    notify: NotifySpec | None = None  # its own [notify] table; easyflow.toml's fills the rest
    source_file: str | None = None
    content_hash: str | None = None

    @functools.cached_property
    def source_dir(self) -> str | None:
        return str(Path(self.source_file).parent) if self.source_file else None


def _check_deadline(check: Checker, table: dict) -> datetime | None:
    if "deadline" not in table:
        return None
    value = table["deadline"]
    path = ("deadline",)
    if isinstance(value, datetime):
        value = value.isoformat()
    if isinstance(value, str):
        try:
            return parse_time(value)
        except TimeOutOfRange as exc:
            check.fail(path, f"{shown(value)} {exc}")
            return None
        except ValueError:
            check.fail(path, "must be an ISO-8601 time like 2026-12-01T09:00:00Z, got "
                             f"{shown(value)}")
            return None
    check.fail(path, f"must be an ISO-8601 date-time, got {type_name(value)}")
    return None


def _check_run(check: Checker, step: dict, path: tuple, shell: bool) -> tuple[str, ...]:
    if "run" not in step:
        check.fail(path + ("run",), "is required (an argv list like [\"echo\", \"hi\"]), "
                   "or give call = \"package.module:function\"")
        return ()
    value = step["run"]
    if shell:
        if isinstance(value, list) and all(isinstance(v, str) for v in value):
            value = shlex.join(value)
        if not isinstance(value, str) or not value.strip():
            check.fail(path + ("run",), "with shell = true must be a non-empty command string")
            return ()
        if "\0" in value:
            check.fail(path + ("run",), NUL_MESSAGE)
            return ()
        return (value,)
    if isinstance(value, str):
        try:
            argv = shlex.split(value)
        except ValueError as exc:
            check.fail(path + ("run",), f"cannot be split into arguments: {exc}")
            return ()
    elif isinstance(value, list):
        bad = [v for v in value if not isinstance(v, str)]
        if bad:
            check.fail(path + ("run",), "must be a list of strings")
            return ()
        argv = value
    else:
        check.fail(path + ("run",), f"must be an argv list or a string, got {type_name(value)}")
        return ()
    if not argv or not argv[0]:
        check.fail(path + ("run",), "must name a program to run")
        return ()
    if any("\0" in arg for arg in argv):
        check.fail(path + ("run",), NUL_MESSAGE)
        return ()
    return tuple(argv)


def _check_call(check: Checker, step: dict, path: tuple) -> tuple[str | None, tuple[str, ...]]:
    """`call = "package.module:function"` with optional `args`, instead of `run`."""
    if "run" in step:
        check.fail(path + ("call",), "give either run or call, not both")
    if step.get("shell"):
        check.fail(path + ("shell",), "only applies to run, not to call")
    target = check.string(step, "call", path)
    if target is not None and not CALL_PATTERN.fullmatch(target):
        check.fail(path + ("call",), f"must look like 'package.module:function', got {target!r}")
        target = None
    args = step.get("args", [])
    if not isinstance(args, list) or not all(isinstance(a, str) for a in args):
        check.fail(path + ("args",), "must be a list of strings")
        args = []
    return target, tuple(args)


def _check_env(check: Checker, step: dict, path: tuple) -> tuple[dict[str, str], dict[str, str]]:
    """The step's plain variables, and those read from a systemd credential."""
    value = step.get("env", {})
    if not isinstance(value, dict):
        check.fail(path + ("env",), f"must be a table of strings, got {type_name(value)}")
        return {}, {}
    env: dict[str, str] = {}
    credentials: dict[str, str] = {}
    for key, item in value.items():
        if isinstance(item, dict) and "credential" in item \
                and ENV_NAME_PATTERN.fullmatch(key):
            name = _check_credential(check, item, path + ("env", key))
            if name is not None:
                credentials[key] = name
        elif not isinstance(item, str):
            check.fail(path + ("env", key), "must be a string or { credential = \"name\" }, "
                                            f"got {type_name(item)}")
        elif not ENV_NAME_PATTERN.fullmatch(key):
            check.fail(path + ("env", key), "is not a valid environment variable name")
        elif "\0" in item:
            check.fail(path + ("env", key), NUL_MESSAGE)
        else:
            env[key] = item
    return env, credentials


def _check_credential(check: Checker, item: dict, path: tuple) -> str | None:
    """`{ credential = "api-token" }`: a file name in systemd's $CREDENTIALS_DIRECTORY."""
    check.unknown_keys(item, ("credential",), path)
    name = check.string(item, "credential", path, required=True)
    if name is not None and not CREDENTIAL_NAME.fullmatch(name):
        check.fail(path + ("credential",), f"{shown(name)} is not a credential name (letters, "
                                           "digits, '_', '-', '.', '@'; as in LoadCredential=)")
        return None
    return name


def _check_env_file(check: Checker, table: dict, path: tuple,
                    base_dir: Path | None) -> str | None:
    """A dotenv file's path, relative to the workflow file's folder; read when a run starts."""
    value = check.string(table, "env_file", path)
    if value is None:
        return None
    if not value.strip():
        check.fail(path + ("env_file",), "must name a file")
        return None
    if "\0" in value:
        check.fail(path + ("env_file",), NUL_MESSAGE)
        return None
    if base_dir is not None and not Path(value).is_absolute():
        return str((base_dir / value).resolve())
    return value


def _check_max_concurrent(check: Checker, table: dict) -> int | None:
    value = table.get("max_concurrent")
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) \
            or not 1 <= value <= MAX_CONCURRENT_MAX:
        check.fail(("max_concurrent",), f"must be a whole number from 1 to {MAX_CONCURRENT_MAX}, "
                                        f"got {shown(value)}")
        return None
    return value


def _check_steps(check: Checker, table: dict, base_dir: Path | None) -> tuple[StepSpec, ...]:
    raw = table.get("steps")
    if raw is not None and not isinstance(raw, list):
        check.fail(("steps",), f"must be an array of tables ([[steps]]), got {type_name(raw)}")
        return ()
    if not raw:
        check.fail(("steps",), "at least one [[steps]] is required")
        return ()
    steps, seen = [], set()
    for index, path, step in check.tables(raw, "steps", STEP_KEYS):
        name = check.string(step, "name", path) or f"step-{index + 1}"
        if name in seen:
            check.fail(path + ("name",), f"duplicate step name {name!r}")
        seen.add(name)
        shell = check.boolean(step, "shell", path)
        call: str | None = None
        args: tuple[str, ...] = ()
        run: tuple[str, ...] = ()
        if "call" in step:
            call, args = _check_call(check, step, path)
        else:
            if "args" in step:
                check.fail(path + ("args",), "only applies to call; put arguments in run")
            run = _check_run(check, step, path, shell)
        cwd = check.string(step, "cwd", path)
        if cwd is not None and base_dir is not None and not Path(cwd).is_absolute():
            cwd = str((base_dir / cwd).resolve())
        timeout = check.duration(step, "timeout", path)
        env, credentials = _check_env(check, step, path)
        steps.append(StepSpec(
            name=name, run=run, shell=shell, env=env, cwd=cwd,
            timeout=timeout, continue_on_error=check.boolean(step, "continue_on_error", path),
            call=call, args=args, env_file=_check_env_file(check, step, path, base_dir),
            credentials=credentials,
        ))
    return tuple(steps)


def _check_schedules(check: Checker, table: dict, verify: bool) -> tuple[ScheduleSpec, ...]:
    raw = table.get("schedules", [])
    if not isinstance(raw, list):
        check.fail(("schedules",), "must be an array of tables ([[schedules]])")
        return ()
    schedules = []
    for _, path, item in check.tables(raw, "schedules", SCHEDULE_KEYS):
        kinds = [k for k in SCHEDULE_KINDS if k in item]
        if len(kinds) != 1:
            check.fail(path, "needs exactly one of cron, every, at")
            continue
        kind = kinds[0]
        value = item[kind]
        if isinstance(value, datetime) and kind == "at":
            value = value.isoformat()
        if not isinstance(value, str):
            check.fail(path + (kind,), f"must be a string, got {type_name(value)}")
            continue
        timezone = check.string(item, "timezone", path)
        mode = check.choice(item, "mode", path, Mode)
        deadline_after = check.duration(item, "deadline_after", path)
        jitter = check.duration(item, "jitter", path)
        if verify:
            from easyflow_cli.core.triggers import check_schedule, check_timezone

            try:
                check_timezone(timezone)
            except ValueError as exc:
                check.fail(path + ("timezone",), str(exc))
                continue
            try:
                value = check_schedule(kind, value, timezone)
            except ValueError as exc:
                check.fail(path + (kind,), str(exc))
                continue
        schedules.append(ScheduleSpec(kind, value, timezone, mode, deadline_after, jitter))
    return tuple(schedules)


def _check_retries(check: Checker, table: dict) -> int:
    value = table.get("retries", 0)
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= RETRIES_MAX:
        check.fail(("retries",), f"must be a whole number from 0 to {RETRIES_MAX}, got "
                                 f"{shown(value)}")
        return 0
    return value


def _check_keep_runs(check: Checker, table: dict) -> int | None:
    value = table.get("keep_runs")
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        check.fail(("keep_runs",), f"must be a whole number >= 1, got {shown(value)}")
        return None
    return value


def _check_workflow(check: Checker, table: dict, base_dir: Path | None,
                    verify: bool) -> dict[str, Any]:
    check.unknown_keys(table, WORKFLOW_KEYS, ())
    name = check.string(table, "name", (), required=True)
    if name == "":
        check.fail(("name",), "must not be empty")
    elif name is not None and not NAME_PATTERN.fullmatch(name):
        check.fail(("name",), f"{shown(name)} may only use letters, digits, '-' and '_'")
    elif name is not None and len(name) > NAME_MAX:
        check.fail(("name",), f"is {len(name)} characters long; at most {NAME_MAX}")
    return dict(
        name=name,
        description=check.string(table, "description", ()) or "",
        execution_mode=check.choice(table, "execution_mode", (), Mode),
        deadline=_check_deadline(check, table),
        deadline_after=check.duration(table, "deadline_after", ()),
        cost_priority=check.choice(table, "cost_priority", (), CostPriority)
        or CostPriority.NORMAL,
        timeout=check.duration(table, "timeout", ()),
        retries=_check_retries(check, table),
        retry_backoff=check.duration(table, "retry_backoff", ()),
        allow_overlap=check.boolean(table, "allow_overlap", ()),
        max_concurrent=_check_max_concurrent(check, table),
        env_file=_check_env_file(check, table, (), base_dir),
        keep_runs=_check_keep_runs(check, table),
        steps=_check_steps(check, table, base_dir),
        schedules=_check_schedules(check, table, verify),
        notify=check_notify(check, table, ()),
    )


# --------------------------------------------------------------------------- public API


def parse_workflow_text(text: str, file: str | None = None, *, verify: bool = True) -> WorkflowSpec:
    """Parse one workflow document; raises SpecErrors listing every problem found."""
    table = load_toml(text, file)
    if not table:
        raise SpecErrors([SpecError("holds no workflow: write name = \"...\" and at least one "
                                    "[[steps]]", file=file)])
    base_dir = Path(file).resolve().parent if file else None
    check = Checker(file, KeyLines(text))
    fields = _check_workflow(check, table, base_dir, verify)
    if check.errors:
        raise SpecErrors(check.errors)
    source = str(Path(file).resolve()) if file else None
    import hashlib  # here: loading OpenSSL is a noticeable part of the CLI's start-up

    digest = hashlib.sha256(text.encode()).hexdigest()
    return WorkflowSpec(**fields, source_file=source, content_hash=digest)


def spec_to_dict(spec: WorkflowSpec) -> dict[str, Any]:
    """The canonical TOML-shaped form: defaults left out, durations as text."""
    out: dict[str, Any] = {"name": spec.name}
    if spec.description:
        out["description"] = spec.description
    if spec.execution_mode:
        out["execution_mode"] = spec.execution_mode.value
    if spec.deadline:
        out["deadline"] = to_iso(spec.deadline)
    _put_duration(out, "deadline_after", spec.deadline_after)
    if spec.cost_priority != CostPriority.NORMAL:
        out["cost_priority"] = spec.cost_priority.value
    _put_duration(out, "timeout", spec.timeout)
    if spec.retries:
        out["retries"] = spec.retries
    _put_duration(out, "retry_backoff", spec.retry_backoff)
    if spec.allow_overlap:
        out["allow_overlap"] = True
    if spec.max_concurrent is not None:
        out["max_concurrent"] = spec.max_concurrent
    if spec.env_file:
        out["env_file"] = spec.env_file
    if spec.keep_runs is not None:
        out["keep_runs"] = spec.keep_runs
    out["steps"] = [_step_to_dict(step) for step in spec.steps]
    if spec.schedules:
        out["schedules"] = [_schedule_to_dict(s) for s in spec.schedules]
    if spec.notify is not None:
        out["notify"] = notify_to_dict(spec.notify)
    return out


def _put_duration(out: dict, key: str, seconds: float | None) -> None:
    if seconds is not None:
        out[key] = format_duration(seconds)


def _step_to_dict(step: StepSpec) -> dict[str, Any]:
    out: dict[str, Any] = {"name": step.name}
    if step.call:
        out["call"] = step.call
        if step.args:
            out["args"] = list(step.args)
    else:
        out["run"] = step.run[0] if step.shell else list(step.run)
    if step.shell:
        out["shell"] = True
    if step.env or step.credentials:
        out["env"] = {**step.env, **{key: {"credential": name}
                                     for key, name in step.credentials.items()}}
    if step.env_file:
        out["env_file"] = step.env_file
    if step.cwd:
        out["cwd"] = step.cwd
    _put_duration(out, "timeout", step.timeout)
    if step.continue_on_error:
        out["continue_on_error"] = True
    return out


def _schedule_to_dict(schedule: ScheduleSpec) -> dict[str, Any]:
    out: dict[str, Any] = {schedule.kind: schedule.expr}
    if schedule.timezone:
        out["timezone"] = schedule.timezone
    if schedule.mode:
        out["mode"] = schedule.mode.value
    _put_duration(out, "deadline_after", schedule.deadline_after)
    _put_duration(out, "jitter", schedule.jitter)
    return out


def spec_from_dict(
    data: dict[str, Any], *, source_file: str | None = None, content_hash: str | None = None,
) -> WorkflowSpec:
    """Rebuild a stored spec. It was validated on the way in, so schedules are not re-verified."""
    check = Checker(source_file, None)
    fields = _check_workflow(check, data, None, verify=False)
    if check.errors:
        raise SpecErrors(check.errors)
    return WorkflowSpec(**fields, source_file=source_file, content_hash=content_hash)


def portable(spec: WorkflowSpec, schedules: Sequence[ScheduleSpec]) -> WorkflowSpec:
    """The workflow as a file that means the same wherever it is put: every step's working
    directory absolute (a step without one ran in its file's folder, so that folder is written
    out, and relative paths in its command resolve as before), with these schedules."""
    base = spec.source_dir
    steps = tuple(step if step.cwd or base is None else replace(step, cwd=base)
                  for step in spec.steps)
    return replace(spec, steps=steps, schedules=tuple(schedules))


def to_toml(spec: WorkflowSpec) -> str:
    import tomli_w

    return tomli_w.dumps(spec_to_dict(spec))
