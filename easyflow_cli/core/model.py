"""The named values every layer shares, and the run itself.

Enum values are part of the interface (TOML, CLI, JSON, SQL) and never change. A `Run` is the
documented run record, typed; `Run.to_record()` is the one place its JSON/CSV form is made.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from datetime import datetime
from enum import StrEnum
from typing import Any

from easyflow_cli.core.timeutil import to_iso


class Mode(StrEnum):
    REAL_TIME = "real-time"
    BALANCED = "balanced"
    ECO = "eco"


class Trigger(StrEnum):
    MANUAL = "manual"
    SCHEDULE = "schedule"
    CATCH_UP = "catch-up"
    RETRY = "retry"


class RunState(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    TIMED_OUT = "timed_out"
    CANCELLED = "cancelled"

    @property
    def finished(self) -> bool:
        return self not in (RunState.QUEUED, RunState.RUNNING)


class CostPriority(StrEnum):
    HIGH = "high"
    NORMAL = "normal"
    LOW = "low"

    @property
    def rank(self) -> int:
        """Order inside one mode's queue: high first."""
        return _PRIORITY_RANK[self]


_PRIORITY_RANK = {CostPriority.HIGH: 0, CostPriority.NORMAL: 1, CostPriority.LOW: 2}


class ModeReason(StrEnum):
    EXPLICIT = "explicit"
    WORKFLOW = "workflow"
    MANUAL = "manual"
    SCHEDULE = "schedule"
    DEADLINE = "deadline"
    DEFAULT = "default"
    PROMOTED = "promoted"


class PoolName(StrEnum):
    """Where a run executed: its mode's pool of the daemon, or a CLI in the foreground."""

    REAL_TIME = "real-time"
    BALANCED = "balanced"
    ECO = "eco"
    FOREGROUND = "foreground"

    @classmethod
    def of(cls, mode: Mode) -> PoolName:
        return cls(mode.value)


class StopReason(StrEnum):
    """Why the daemon asked a worker to stop a run it was executing."""

    CANCELLED = "cancelled"  # its user cancelled it
    SHUTDOWN = "shutdown"  # the daemon is stopping
    OVERDUE = "overdue"  # past its timeout: its worker did not stop it, and was killed


@dataclass(frozen=True)
class Outcome:
    """How a run ended, as measured by whoever executed it."""

    state: RunState
    exit_code: int | None = None
    error: str | None = None
    cpu_user_s: float = 0.0
    cpu_system_s: float = 0.0
    peak_rss_kb: int = 0
    energy_j: float | None = None  # measured (RAPL); None where only an estimate is possible
    # Measured on the monotonic clock, which a wall-clock jump cannot stretch; None where no
    # executor measured the run (its worker or daemon died), and the stamps must do.
    duration_s: float | None = None


@dataclass(frozen=True, slots=True)
class StepGroup:
    """The process group of a run's current step, and what tells its leader from a process that
    got the same pid later (see runtime/process_identity.py)."""

    pgid: int
    leader_start: int | None = None  # clock ticks since boot
    boot_id: str | None = None


@dataclass(slots=True)
class Run:
    """One run, every field of the documented run record (`runs show --json`), in its order."""

    id: int
    workflow: str
    trigger: Trigger
    mode: Mode
    mode_reason: ModeReason
    cost_priority: CostPriority
    deadline: datetime | None
    state: RunState
    enqueued_at: datetime
    not_before: datetime | None = None
    promote_at: datetime | None = None
    claimed_at: datetime | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    exit_code: int | None = None
    attempt: int = 1
    retry_of: int | None = None
    rerun_of: int | None = None
    # Did its submitter wait for it? True: `run --now` followed it; False: `--no-wait`; None:
    # nobody submitted it by hand (schedules), or it was queued before this was recorded.
    followed: bool | None = None
    schedule_id: int | None = None
    batch_id: str | None = None
    pool: PoolName | None = None
    worker: str | None = None
    pid: int | None = None
    pgid: int | None = None
    cpu_user_s: float | None = None
    cpu_system_s: float | None = None
    peak_rss_kb: int | None = None
    queue_wait_s: float | None = None
    duration_s: float | None = None
    off_peak: bool | None = None
    deadline_met: bool | None = None
    energy_j: float | None = None
    error: str | None = None
    log_path: str | None = None
    not_before_reason: str | None = None  # why it waited until not_before (eco planning)

    def to_record(self) -> dict[str, Any]:
        """The run as JSON and CSV show it: enum values as their strings, times as ISO UTC."""
        return {name: _plain(getattr(self, name)) for name in RUN_FIELDS}


RUN_FIELDS: tuple[str, ...] = tuple(f.name for f in fields(Run))


def _plain(value: Any) -> Any:
    if isinstance(value, datetime):
        return to_iso(value)
    if isinstance(value, StrEnum):
        return value.value
    return value


@dataclass(slots=True)
class ClaimedRun:
    """What the daemon needs of a run it claimed, hands to a worker and records the end of.

    Not a whole `Run`: claims are the daemon's hot path, and reading every column of every
    claimed run measurably slowed a drain. Not frozen either, as no value made once per run on
    that path is: a frozen dataclass takes several times as long to make.
    """

    id: int
    workflow: str
    mode: Mode
    cost_priority: CostPriority
    deadline: datetime | None
    enqueued_at: datetime
    claimed_at: datetime
