"""The settlement rules: how a run ended, why it was stopped and what its workflow allows in;
finish, retry or requeue out. Pure: no database, no clock."""

import pytest

from easyflow_cli.core.model import Outcome, RunState, StopReason
from easyflow_cli.runtime.daemon.settlement import (
    SHUTDOWN_NOTE,
    RunFacts,
    Settlement,
    Transition,
    after_daemon_death,
    after_end,
    after_interruption,
    after_worker_death,
)

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


def test_a_dead_worker_s_runs():
    assert after_worker_death(NOT_STARTED, None, 42, -9) == Settlement(
        Transition.REQUEUE, note="its worker died before it started")
    died = after_worker_death(FIRST_TRY, None, 42, -9)
    assert died.transition is Transition.FINISH and died.outcome is not None
    assert died.outcome.state is RunState.FAILED
    assert died.outcome.error == "worker process 42 died (exit status -9) while running it"
    assert after_worker_death(MAY_RETRY, None, 42, -9).transition is Transition.RETRY
    assert after_worker_death(MAY_RETRY, StopReason.SHUTDOWN, 42, -9).transition is (
        Transition.REQUEUE)


def test_runs_a_dead_daemon_left_running():
    assert after_daemon_death(NOT_STARTED) == Settlement(
        Transition.REQUEUE, note="re-queued after a daemon restart")
    found = after_daemon_death(FIRST_TRY)
    assert found.outcome is not None and found.outcome.state is RunState.FAILED
    assert "found at start-up" in (found.outcome.error or "")
    assert after_daemon_death(MAY_RETRY).transition is Transition.RETRY
