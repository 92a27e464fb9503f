"""What becomes of a run when it ends or is interrupted by a shutdown; and of the runs a worker
or a daemon that is gone left running.

The rules for a run that ended are pure: the facts about it (did it start, which attempt, how
many retries its workflow allows), how it ended and why it was stopped go in; a `Settlement`
comes out: finish it as it ended, finish it and retry it, or put it back in the queue. `apply`
writes one. Runs whose worker or daemon is gone follow the queue's one rule for them
(`RunQueue.settle_abandoned`), written a batch at a time by `settle_abandoned`.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from easyflow_cli.core.errors import NotFound
from easyflow_cli.core.model import Outcome, Run, RunState, StopReason
from easyflow_cli.core.planning import RETRIED_STATES, PlannedRun, plan_retry
from easyflow_cli.storage.backend import Backend
from easyflow_cli.storage.run_queue import NextAttempt, RunEnd
from easyflow_cli.storage.store import Store

log = logging.getLogger("easyflow.daemon")

SHUTDOWN_NOTE = "interrupted by daemon shutdown"


class Transition(StrEnum):
    FINISH = "finish"  # record the outcome; the run is over
    RETRY = "retry"  # record the outcome, and queue the next attempt
    REQUEUE = "requeue"  # back in the queue, as if it had never been handed out


@dataclass(frozen=True)
class RunFacts:
    """What the rules need to know about a run."""

    run_id: int
    started: bool
    attempt: int
    retries: int  # how many retries its workflow allows (none once the workflow is removed)


@dataclass(frozen=True)
class Settlement:
    transition: Transition
    outcome: Outcome | None = None  # FINISH and RETRY
    note: str | None = None  # REQUEUE: why, kept in the run's error field


def after_end(run: RunFacts, outcome: Outcome, stop: StopReason | None) -> Settlement:
    """Its worker reported how it ended."""
    if stop is StopReason.SHUTDOWN and outcome.state is RunState.CANCELLED:
        return after_interruption(run)
    if outcome.state in RETRIED_STATES and run.attempt <= run.retries:
        return Settlement(Transition.RETRY, outcome)
    return Settlement(Transition.FINISH, outcome)


def after_interruption(run: RunFacts) -> Settlement:
    """Stopped by a shutdown: back in the queue if it never started or may be retried."""
    if not run.started or run.attempt <= run.retries:
        return Settlement(Transition.REQUEUE, note=SHUTDOWN_NOTE + "; re-queued")
    return Settlement(Transition.FINISH, Outcome(RunState.FAILED, error=SHUTDOWN_NOTE))


def after_overdue(run: RunFacts, pid: int) -> Settlement:
    """Past its time, its worker did not stop it, and the daemon killed the worker."""
    error = f"timed out; its worker (pid {pid}) did not stop it and was killed"
    return after_end(run, Outcome(RunState.TIMED_OUT, error=error), None)


def settle_abandoned(store: Backend, run_ids: Sequence[int], now: datetime, *, note: str,
                     error: str) -> list[Run]:
    """Runs whose worker or daemon is gone: never started → queued with `note`; started →
    failed with `error`, then retried if the workflow allows. One transaction. The failed."""
    failed = store.queue.settle_abandoned(run_ids, now=now, note=note, error=error,
                                          next_attempt=next_attempt(store, now))
    for run in failed:
        log.warning("run %d (%s) failed: %s", run.id, run.workflow, error)
    return failed


def next_attempt(store: Backend, now: datetime) -> NextAttempt:
    """Plans a failed run's next attempt by its workflow's retries (none once it is removed)."""
    def plan(run: Run) -> PlannedRun | None:
        try:
            spec = store.get_workflow(run.workflow)
        except NotFound:
            return None
        return plan_retry(run, spec, now)
    return plan


def facts(store: Store, run: Run) -> RunFacts:
    try:
        retries = store.get_workflow(run.workflow).retries
    except NotFound:
        retries = 0
    return RunFacts(run.id, run.started_at is not None, run.attempt, retries)


def facts_of(store: Store, run_id: int) -> RunFacts:
    return facts(store, store.queue.get(run_id))


def apply(store: Store, run_id: int, settlement: Settlement, now: datetime) -> None:
    """Write a settlement: the end and its retry in one transaction, so a crash in between
    cannot lose the retry."""
    queue = store.queue
    if settlement.transition is Transition.REQUEUE:
        queue.requeue([run_id], settlement.note)
        return
    assert settlement.outcome is not None
    with store.write():
        queue.finish([RunEnd.of(queue.get(run_id), settlement.outcome, now)])
        run = queue.get(run_id)
        retry = None
        if settlement.transition is Transition.RETRY and run.state in RETRIED_STATES:
            planned = next_attempt(store, now)(run)
            if planned is not None:
                retry = queue.get(queue.enqueue([planned])[0])
    log.info("run %d (%s, %s) %s in %.2fs", run_id, run.workflow, run.mode.value,
             run.state.value, run.duration_s or 0)
    if retry is not None:
        log.info("run %d will be retried as run %d (attempt %d)", run_id, retry.id,
                 retry.attempt)

