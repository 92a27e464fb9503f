"""Planning a run before it is queued: its mode and why, deadline, when it may start and when it
is promoted; and the next attempt of a failed run.

Pure functions of their arguments (`now` is passed in): a run is planned once, by whoever
queues it, and the queue only stores the plan.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from easyflow_cli.core.config import Optimise
from easyflow_cli.core.eco_plan import (
    DEFAULT_MAX_DELAY,
    EcoStart,
    RunEstimate,
    Series,
    plan_eco_start,
)
from easyflow_cli.core.learned import Expectation
from easyflow_cli.core.model import CostPriority, Mode, ModeReason, Run, RunState, Trigger
from easyflow_cli.core.modes import promotion_time, resolve_mode, should_promote
from easyflow_cli.core.offpeak import OffPeakWindow
from easyflow_cli.core.spec import WorkflowSpec

# How a run may end and be tried again; a cancelled run was stopped on purpose.
RETRIED_STATES = (RunState.FAILED, RunState.TIMED_OUT)

# A workflow's expectation in a mode (`storage.learned_durations`), asked for the mode planned.
Expected = Callable[[Mode], Expectation]


@dataclass(frozen=True)
class QueuePolicy:
    """The parts of the daemon config that decide how a new run waits."""

    promote_within: timedelta = timedelta(hours=1)
    off_peak: OffPeakWindow | None = None
    optimise: Optimise = Optimise.OFF_PEAK
    max_delay: timedelta = DEFAULT_MAX_DELAY
    # The forecast eco runs are planned against (optimise "cost" or "carbon"); None: the
    # off-peak window only.
    series: Series | None = None
    series_path: Path | None = None  # the file `series` was read from


@dataclass(slots=True)
class PlannedRun:
    """A run as it enters the queue (state `queued`); the queue gives it its id.

    Not frozen: bulk submissions make thousands, and a frozen dataclass takes several times as
    long to make."""

    workflow: str
    trigger: Trigger
    mode: Mode
    mode_reason: ModeReason
    cost_priority: CostPriority
    deadline: datetime | None
    enqueued_at: datetime
    not_before: datetime | None = None
    promote_at: datetime | None = None
    attempt: int = 1
    retry_of: int | None = None
    rerun_of: int | None = None
    schedule_id: int | None = None
    not_before_reason: str | None = None  # why it waits until not_before (eco)
    followed: bool | None = None  # see `Run.followed`


def plan_run(
    spec: WorkflowSpec,
    *,
    trigger: Trigger,
    now: datetime,
    policy: QueuePolicy,
    override: Mode | None = None,
    deadline: datetime | None = None,
    deadline_after: float | None = None,
    expected: Expected | None = None,
    estimate: RunEstimate | None = None,
    not_before: datetime | None = None,
    schedule_id: int | None = None,
    rerun_of: int | None = None,
) -> PlannedRun:
    """A new run of `spec`, fired by `trigger` at `now` (`rerun_of`: the run it repeats).

    `expected` gives its learned duration in the mode it gets: it is promoted once its p90
    plus a margin (the prediction's recent error) no longer fits before its deadline.
    `estimate`: its p90 duration and energy (or those of the batch it is part of), which an eco
    run is planned by under a forecast."""
    after = deadline_after or spec.deadline_after
    if deadline is None and after:
        deadline = now + timedelta(seconds=after)
    if deadline is None:
        deadline = spec.deadline
    resolution = resolve_mode(
        trigger=trigger, now=now, override=override, workflow_mode=spec.execution_mode,
        deadline=deadline, promote_within=policy.promote_within,
    )
    mode, reason = resolution.mode, resolution.reason
    needed = time_needed(expected, mode, deadline)
    if should_promote(mode, deadline, now, policy.promote_within, needed):
        mode, reason = Mode.REAL_TIME, ModeReason.PROMOTED
    why = None
    if mode == Mode.ECO:
        not_before, why = eco_not_before(policy, now, deadline, needed, estimate,
                                         not_before)
    promote_at = None
    if mode != Mode.REAL_TIME:
        promote_at = promotion_time(deadline, policy.promote_within, needed)
    return PlannedRun(spec.name, trigger, mode, reason, CostPriority(spec.cost_priority),
                      deadline, now, not_before, promote_at, rerun_of=rerun_of,
                      schedule_id=schedule_id, not_before_reason=why)


def eco_not_before(policy: QueuePolicy, now: datetime, deadline: datetime | None,
                   needed: timedelta | None, estimate: RunEstimate | None,
                   not_before: datetime | None) -> tuple[datetime | None, str | None]:
    """When an eco run may start, and why: planned against the forecast where the policy
    optimises cost or carbon and the run's estimate is known; else the off-peak window."""
    if policy.series is not None and estimate is not None:
        earliest = max(now, not_before) if not_before is not None else now
        start = plan_eco_start(policy.series, estimate, now=earliest, deadline=deadline,
                               max_delay=policy.max_delay - (earliest - now),
                               off_peak=policy.off_peak, margin=policy.promote_within)
        return _recorded(start, not_before)
    if policy.off_peak is None:
        return not_before, None
    start_at = off_peak_start(policy.off_peak, now, deadline, needed, not_before)
    if start_at is None or start_at == not_before:
        return start_at, None
    return start_at, f"off-peak window {policy.off_peak.text()}"


def _recorded(start: EcoStart | None,
              not_before: datetime | None) -> tuple[datetime | None, str | None]:
    if start is None:
        return not_before, None
    return start.not_before or not_before, start.reason


def time_needed(expected: Expected | None, mode: Mode,
                deadline: datetime | None) -> timedelta | None:
    """The p90 duration of a run in `mode` plus its margin; only a run with a deadline asks."""
    if expected is None or deadline is None:
        return None
    figures = expected(mode)
    return timedelta(seconds=figures.duration.p90 + figures.margin_s)


def off_peak_start(window: OffPeakWindow, now: datetime, deadline: datetime | None,
                   needed: timedelta | None, not_before: datetime | None) -> datetime | None:
    """When eco work may start: at the window, unless waiting would miss the deadline."""
    start = window.next_start(now)
    if not_before is not None and not_before > start:
        start = not_before
    if start <= now:
        return not_before
    if deadline is not None and start + (needed or timedelta(0)) > deadline:
        return not_before
    return start


def plan_retry(run: Run, spec: WorkflowSpec, now: datetime) -> PlannedRun | None:
    """The next attempt of a run that failed or timed out, if the workflow allows one more."""
    if run.state not in RETRIED_STATES or run.attempt > spec.retries:
        return None
    backoff = timedelta(seconds=spec.retry_backoff or 0)
    return PlannedRun(
        run.workflow, Trigger.RETRY, run.mode, run.mode_reason, run.cost_priority, run.deadline,
        now, not_before=now + backoff if backoff else None, promote_at=run.promote_at,
        attempt=run.attempt + 1, retry_of=run.id, rerun_of=run.rerun_of,
        schedule_id=run.schedule_id, followed=run.followed,
    )
