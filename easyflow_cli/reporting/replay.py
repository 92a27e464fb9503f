"""The runs of a period as a simulation replays them: when each arrived, what it was asked to
do (trigger, mode, deadline), and what it took (duration, CPU time, energy) and when it really
started. Read once, in arrival order."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from easyflow_cli.core.model import Mode, ModeReason, RunState, Trigger
from easyflow_cli.core.timeutil import from_iso, to_iso
from easyflow_cli.storage.dialect import ReportStore

REPLAY_SQL = (
    "SELECT id, workflow, trigger, mode, mode_reason, deadline, enqueued_at, started_at,"
    " duration_s, coalesce(cpu_user_s, 0) + coalesce(cpu_system_s, 0), energy_j, state"
    " FROM runs WHERE enqueued_at >= ? AND enqueued_at < ? AND duration_s IS NOT NULL"
    " ORDER BY enqueued_at, id")


@dataclass(frozen=True, slots=True)
class ReplayRun:
    id: int
    workflow: str
    trigger: Trigger
    mode: Mode
    mode_reason: ModeReason
    deadline: datetime | None
    arrived: datetime
    started: datetime            # as it happened (its arrival, where it never started)
    duration_s: float
    cpu_s: float
    energy_j: float | None
    succeeded: bool


@dataclass(frozen=True, slots=True)
class Placement:
    """Where and when one run went, as it happened or under a policy."""

    run: ReplayRun
    mode: Mode
    start: datetime

    @property
    def finish(self) -> datetime:
        return self.start + timedelta(seconds=self.run.duration_s)


def replayed_runs(store: ReportStore, since: datetime, until: datetime) -> list[ReplayRun]:
    """The period's runs that ran (a duration was recorded), in arrival order."""
    rows = store.read(REPLAY_SQL, (to_iso(since), to_iso(until))).fetchall()
    return [_replayed(row) for row in rows]


def _replayed(row: tuple) -> ReplayRun:
    (run_id, workflow, trigger, mode, reason, deadline, enqueued, started, duration, cpu,
     energy, state) = row
    arrived = from_iso(enqueued)
    return ReplayRun(run_id, workflow, Trigger(trigger), Mode(mode), ModeReason(reason),
                     from_iso(deadline), arrived, from_iso(started) or arrived, float(duration),
                     float(cpu), energy, state == RunState.SUCCEEDED.value)
