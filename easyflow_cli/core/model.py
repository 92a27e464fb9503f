"""The named values every layer shares: modes, triggers, run states, cost priorities.

Their string values are part of the interface (TOML, CLI, JSON, SQL) and never change.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Mode(StrEnum):
    REAL_TIME = "real-time"
    BALANCED = "balanced"
    ECO = "eco"

    @property
    def rank(self) -> int:
        """Dispatch order across modes: real-time before balanced before eco."""
        return _MODE_RANK[self]


_MODE_RANK = {Mode.REAL_TIME: 0, Mode.BALANCED: 1, Mode.ECO: 2}


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
