"""The settlement rules: how a run ended, why it was stopped and what its workflow allows in;
finish, retry or requeue out (pure: no database, no clock). Then the runs a worker or a daemon
that is gone left running, settled through the queue."""

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from easyflow_cli.core.model import Outcome, PoolName, RunState, StopReason, Trigger
from easyflow_cli.core.planning import QueuePolicy, plan_run
from easyflow_cli.core.spec import WorkflowSpec, parse_workflow_text
from easyflow_cli.runtime.daemon.settlement import (
    SHUTDOWN_NOTE,
    RunFacts,
    Settlement,
    Transition,
    after_end,
    after_interruption,
    settle_abandoned,
)
from easyflow_cli.storage.run_queue import RunStart
from easyflow_cli.storage.store import Store

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)

FIRST_TRY = RunFacts(run_id=7, started=True, attempt=1, retries=0)
MAY_RETRY = RunFacts(run_id=7, started=True, attempt=1, retries=2)
LAST_TRY = RunFacts(run_id=7, started=True, attempt=3, retries=2)
NOT_STARTED = RunFacts(run_id=7, started=False, attempt=1, retries=0)


@pytest.mark.parametrize("state", [RunState.SUCCEEDED, RunState.CANCELLED])
def test_a_plain_end_is_recorded_as_it_is(state):
    outcome = Outcome(state)
    assert after_end(MAY_RETRY, outcome, None) == Settlement(Transition.FINISH, outcome)


@pytest.mark.parametrize("state", [RunState.FAILED, RunState.TIMED_OUT])
def test_a_failure_is_retried_while_the_workflow_allows(state):
    outcome = Outcome(state, exit_code=1)
    assert after_end(MAY_RETRY, outcome, None).transition is Transition.RETRY
    assert after_end(LAST_TRY, outcome, None) == Settlement(Transition.FINISH, outcome)
    assert after_end(FIRST_TRY, outcome, None).transition is Transition.FINISH


def test_a_run_its_user_cancelled_is_not_retried():
    outcome = Outcome(RunState.CANCELLED)
    assert after_end(MAY_RETRY, outcome, StopReason.CANCELLED).transition is Transition.FINISH


def test_a_run_cancelled_by_the_shutdown_goes_back_if_it_may_run_again():
    cancelled = Outcome(RunState.CANCELLED)
    requeued = Settlement(Transition.REQUEUE, note=SHUTDOWN_NOTE + "; re-queued")
    assert after_end(MAY_RETRY, cancelled, StopReason.SHUTDOWN) == requeued
    assert after_end(NOT_STARTED, cancelled, StopReason.SHUTDOWN) == requeued
    failed = after_end(FIRST_TRY, cancelled, StopReason.SHUTDOWN)
    assert failed == Settlement(Transition.FINISH, Outcome(RunState.FAILED, error=SHUTDOWN_NOTE))
    assert after_interruption(LAST_TRY) == failed


def test_a_run_that_ended_on_its_own_during_the_shutdown_keeps_its_end():
    succeeded = Outcome(RunState.SUCCEEDED)
    assert after_end(FIRST_TRY, succeeded, StopReason.SHUTDOWN).outcome == succeeded


# ---------------------------------------------------------------------- abandoned runs


def add_run(store: Store, spec: WorkflowSpec, *, start: bool, attempt: int = 1) -> int:
    planned = plan_run(spec, trigger=Trigger.MANUAL, now=NOW, policy=QueuePolicy())
    run_id = store.queue.enqueue([replace(planned, attempt=attempt)])[0]
    store.queue.claim_ids([run_id], now=NOW, pool=PoolName.REAL_TIME, worker="w")
    if start:
        store.queue.start([RunStart(run_id, NOW, NOW, pid=42)])
    return run_id


def test_runs_left_by_a_worker_or_daemon_that_is_gone(store):
    spec = parse_workflow_text('name = "flaky"\nretries = 2\n[[steps]]\nrun = ["true"]\n')
    store.save_workflows([spec], NOW)
    waiting = add_run(store, spec, start=False)
    may_retry = add_run(store, spec, start=True)
    last_try = add_run(store, spec, start=True, attempt=3)
    later = NOW + timedelta(seconds=9)

    failed = settle_abandoned(store, [waiting, may_retry, last_try], later,
                              note="put back", error="it died")
    assert [run.id for run in failed] == [may_retry, last_try]
    assert {(r.state, r.error) for r in failed} == {(RunState.FAILED, "it died")}
    requeued = store.queue.get(waiting)
    assert (requeued.state, requeued.error, requeued.attempt) == (RunState.QUEUED, "put back", 1)
    [retry] = [run for run in store.queue.latest() if run.retry_of is not None]
    assert (retry.retry_of, retry.attempt, retry.trigger) == (may_retry, 2, Trigger.RETRY)


def test_a_removed_workflow_s_abandoned_run_fails_without_a_retry(store):
    spec = parse_workflow_text('name = "gone"\nretries = 2\n[[steps]]\nrun = ["true"]\n')
    store.save_workflows([spec], NOW)
    run_id = add_run(store, spec, start=True)
    store.remove_workflow("gone", NOW)
    [failed] = settle_abandoned(store, [run_id], NOW, note="", error="it died")
    assert failed.state is RunState.FAILED
    assert [run.id for run in store.queue.latest()] == [run_id]
