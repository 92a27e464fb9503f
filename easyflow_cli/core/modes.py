"""Execution-mode resolution (which mode a run gets, and why) and the promotion rule.

Pure functions of their arguments; `now` is always passed in.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from easyflow_cli.core.model import Mode, ModeReason, Trigger

DEFAULT_PROMOTE_WITHIN = timedelta(hours=1)


@dataclass(frozen=True)
class Resolution:
    mode: Mode
    reason: ModeReason


def is_near_deadline(deadline: datetime | None, now: datetime, promote_within: timedelta) -> bool:
    return deadline is not None and deadline - now <= promote_within


def resolve_mode(
    *,
    trigger: Trigger,
    now: datetime,
    override: Mode | None = None,
    workflow_mode: Mode | None = None,
    deadline: datetime | None = None,
    promote_within: timedelta = DEFAULT_PROMOTE_WITHIN,
) -> Resolution:
    """explicit > workflow > manual → real-time > schedule → eco > near deadline > balanced."""
    if override is not None:
        return Resolution(Mode(override), ModeReason.EXPLICIT)
    if workflow_mode is not None:
        return Resolution(Mode(workflow_mode), ModeReason.WORKFLOW)
    if trigger == Trigger.MANUAL:
        return Resolution(Mode.REAL_TIME, ModeReason.MANUAL)
    if trigger in (Trigger.SCHEDULE, Trigger.CATCH_UP):
        return Resolution(Mode.ECO, ModeReason.SCHEDULE)
    if is_near_deadline(deadline, now, promote_within):
        return Resolution(Mode.REAL_TIME, ModeReason.DEADLINE)
    return Resolution(Mode.BALANCED, ModeReason.DEFAULT)


def promotion_time(
    deadline: datetime | None,
    promote_within: timedelta = DEFAULT_PROMOTE_WITHIN,
    needed: timedelta | None = None,
) -> datetime | None:
    """When a waiting run with this deadline must switch to real-time.

    The earlier of `deadline - promote_within` and `deadline - needed` (its learned p90
    duration plus a margin): a run that would no longer finish in the time left is promoted
    even outside the window.
    """
    if deadline is None:
        return None
    lead = promote_within
    if needed is not None and needed > lead:
        lead = needed
    return deadline - lead


def should_promote(
    mode: Mode,
    deadline: datetime | None,
    now: datetime,
    promote_within: timedelta = DEFAULT_PROMOTE_WITHIN,
    needed: timedelta | None = None,
) -> bool:
    """A waiting run becomes real-time (reason `promoted`) once its promotion time has come."""
    if mode == Mode.REAL_TIME:
        return False
    at = promotion_time(deadline, promote_within, needed)
    return at is not None and now >= at
