"""Which events a run's end makes, and what an event says: pure functions of the run, its
workflow's open incident and its learned durations.

An incident is a workflow's spell of failures: it opens with a run's first failed attempt and
is told (`failure`) once, when a run fails after its last retry; the next success closes it,
with a `recovery` if it had been told. A retry that succeeds closes an untold incident quietly.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from easyflow_cli.core.durations import format_duration
from easyflow_cli.core.model import Run, RunState, Trigger
from easyflow_cli.core.notify import SLOW_FACTOR, Event, NoticeRule
from easyflow_cli.core.stats import percentile
from easyflow_cli.core.timeutil import to_iso

FAILING_STATES = (RunState.FAILED, RunState.TIMED_OUT, RunState.CANCELLED)
RETRIED_STATES = (RunState.FAILED, RunState.TIMED_OUT)  # as the daemon's settlement retries
SCHEDULED_TRIGGERS = (Trigger.SCHEDULE, Trigger.CATCH_UP)
# Successful runs needed before a duration may be called slow or fast, and how many of the
# latest ones the percentiles are taken over.
MIN_LEARNED_RUNS = 5
LEARNED_SAMPLE = 100
SUMMARY_ERROR_CHARS = 80  # of an error quoted in a one-line summary


@dataclass(frozen=True)
class Incident:
    first_run: int
    attempts: int  # failed attempts so far
    since: datetime
    told: bool = False  # its `failure` event was written

    def to_record(self) -> dict[str, Any]:
        return {"first_run": self.first_run, "attempts": self.attempts,
                "since": to_iso(self.since)}


@dataclass(frozen=True)
class Baseline:
    """A workflow's learned durations: percentiles over its latest successful runs."""

    runs: int
    p5: float
    p95: float

    @classmethod
    def of(cls, durations: list[float]) -> Baseline | None:
        if len(durations) < MIN_LEARNED_RUNS:
            return None
        ordered = sorted(durations)
        return cls(len(ordered), percentile(ordered, 5), percentile(ordered, 95))

    def to_record(self) -> dict[str, Any]:
        return {"runs": self.runs, "p5_s": self.p5, "p95_s": self.p95}


@dataclass(frozen=True)
class EndEvents:
    incident: Incident | None  # the workflow's incident after this run (None: none open)
    events: tuple[Event, ...]
    told_incident: Incident | None = None  # the incident `failure`/`recovery` speak of


def is_final(run: Run, rule: NoticeRule) -> bool:
    """Did the run end for good, no retry following (the settlement's rule)?"""
    return run.state not in RETRIED_STATES or run.attempt > rule.retries


def end_events(run: Run, rule: NoticeRule, incident: Incident | None,
               baseline: Baseline | None) -> EndEvents:
    """The events of a run that just ended, and its workflow's incident after it."""
    events: list[Event] = []
    told = None
    if run.state in FAILING_STATES:
        since = run.finished_at or run.enqueued_at
        incident = incident or Incident(run.id, 0, since)
        incident = replace(incident, attempts=incident.attempts + 1)
        if is_final(run, rule) and not incident.told:
            incident = told = replace(incident, told=True)
            events.append(Event.FAILURE)
    elif run.state is RunState.SUCCEEDED:
        if incident is not None and incident.told:
            told = incident
            events.append(Event.RECOVERY)
        incident = None
        if slowness(run, baseline, rule.slow_factor):
            events.append(Event.SLOW)
    if run.deadline_met is False:
        events.append(Event.LATE)
    return EndEvents(incident, tuple(e for e in events if rule.watches(e)), told)


def slowness(run: Run, baseline: Baseline | None, factor: float) -> str | None:
    """"slower" or "faster" when a successful run's duration is far outside its baseline."""
    if baseline is None or run.duration_s is None:
        return None
    if run.duration_s > factor * baseline.p95:
        return "slower"
    if run.duration_s < baseline.p5 / factor:
        return "faster"
    return None


def late_at(run: Run, late_after: float) -> datetime | None:
    """When a run not yet ended becomes late: its deadline, or (a scheduled run still waiting)
    `late_after` past its due time, which an off-peak wait moves to the window's start."""
    moments = [run.deadline] if run.deadline is not None else []
    if run.state is RunState.QUEUED and run.trigger in SCHEDULED_TRIGGERS:
        due = run.not_before or run.enqueued_at
        moments.append(due + timedelta(seconds=late_after))
    return min(moments) if moments else None


# --------------------------------------------------------------------------- what it says


def summary(event: Event, run: Run, *, host: str, incident: Incident | None = None,
            baseline: Baseline | None = None, slow_factor: float = SLOW_FACTOR,
            late_after: float | None = None) -> str:
    """One line a pager or a mail subject can show."""
    head = f"easyflow on {host}: {run.workflow}"
    if event is Event.FAILURE:
        attempts = incident.attempts if incident else run.attempt
        return (f"{head} {run.state.value} (run {run.id}, {_why(run)}) after "
                f"{_count(attempts, 'attempt')}")
    if event is Event.RECOVERY:
        failed = f" after {_count(incident.attempts, 'failed attempt')}" if incident else ""
        return f"{head} recovered: run {run.id} succeeded{failed}"
    if event is Event.SLOW and baseline is not None:
        return _slow_summary(head, run, baseline, slow_factor)
    if event is Event.LATE:
        return f"{head} is late: {_lateness(run, late_after)}"
    return f"{head}: test notification (run {run.id} as the sample)"


def _why(run: Run) -> str:
    if run.exit_code is not None:
        return f"exit {run.exit_code}"
    first_line = (run.error or "").strip().splitlines()[:1]
    return shorten(first_line[0]) if first_line else "no exit code"


def shorten(text: str, limit: int = SUMMARY_ERROR_CHARS) -> str:
    return text if len(text) <= limit else text[:limit - 3] + "..."


def _slow_summary(head: str, run: Run, baseline: Baseline, factor: float) -> str:
    took = format_duration(run.duration_s or 0)
    if slowness(run, baseline, factor) == "faster":
        return (f"{head} was unusually fast: run {run.id} took {took}, under its p5 "
                f"{format_duration(baseline.p5)} / {factor:g}")
    return (f"{head} was unusually slow: run {run.id} took {took}, over {factor:g} x its p95 "
            f"{format_duration(baseline.p95)}")


def _lateness(run: Run, late_after: float | None) -> str:
    if run.state.finished:
        return f"run {run.id} missed its deadline {to_iso(run.deadline)}"
    if run.deadline is not None and (late_after is None or run.state is RunState.RUNNING):
        return f"run {run.id} ({run.state.value}) is past its deadline {to_iso(run.deadline)}"
    due = to_iso(run.not_before or run.enqueued_at)
    wait = format_duration(late_after or 0)
    return f"run {run.id} (due {due}) has not started within {wait}"


def _count(n: int, what: str) -> str:
    return f"{n} {what}{'' if n == 1 else 's'}"


def event_record(run: Run, event: Event, event_id: str, *, host: str, summary: str,
                 incident: Incident | None = None,
                 baseline: Baseline | None = None) -> dict[str, Any]:
    """The event as command, webhook and e-mail get it: the run record and what happened."""
    record = run.to_record()
    record.update(event=event.value, event_id=event_id,
                  incident=incident.to_record() if incident else None, host=host,
                  summary=summary)
    if baseline is not None:
        record["baseline"] = baseline.to_record()
    return record
