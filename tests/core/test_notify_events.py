"""Which events a run's end makes: one failure per incident, after the last retry; a recovery
on the first success after it; slow and fast against the learned baseline; late."""

from dataclasses import replace
from datetime import UTC, datetime, timedelta

from easyflow_cli.core.model import CostPriority, Mode, ModeReason, Run, RunState, Trigger
from easyflow_cli.core.notify import WATCHED, Channel, Event, NoticeRule, NotifySpec
from easyflow_cli.core.notify_events import (
    Baseline,
    Incident,
    end_events,
    late_at,
    slowness,
    summary,
)

T0 = datetime(2026, 12, 1, 2, 0, tzinfo=UTC)
RULE = NoticeRule(frozenset(WATCHED), (Channel.WEBHOOK,), NotifySpec(webhook="http://h/"),
                  retries=2)


def run(run_id: int, state: RunState, *, attempt: int = 1, minutes: float = 0,
        duration: float | None = 1.0, **fields) -> Run:
    at = T0 + timedelta(minutes=minutes)
    return Run(run_id, "w", Trigger.SCHEDULE, Mode.ECO, ModeReason.SCHEDULE,
               CostPriority.NORMAL, None, state, at, finished_at=at, attempt=attempt,
               duration_s=duration, **fields)


def play(runs: list[Run], rule: NoticeRule = RULE, baseline: Baseline | None = None):
    """Each run's events in turn, the incident carried from one end to the next."""
    incident, events = None, []
    for r in runs:
        decided = end_events(r, rule, incident, baseline)
        incident = decided.incident
        events.append(decided.events)
    return events, incident


def test_a_failure_is_told_once_after_the_last_retry_and_recovery_once():
    failed = RunState.FAILED
    events, incident = play([run(1, failed), run(2, failed, attempt=2),
                             run(3, failed, attempt=3, minutes=1),
                             run(4, failed, minutes=60), run(5, RunState.TIMED_OUT, attempt=3),
                             run(6, RunState.SUCCEEDED), run(7, RunState.SUCCEEDED)])
    assert events == [(), (), (Event.FAILURE,), (), (), (Event.RECOVERY,), ()]
    assert incident is None


def test_the_incident_counts_attempts_from_its_first_failing_run():
    decided = None
    incident = None
    for r in (run(1, RunState.FAILED), run(2, RunState.FAILED, attempt=2),
              run(3, RunState.FAILED, attempt=3, minutes=2)):
        decided = end_events(r, RULE, incident, None)
        incident = decided.incident
    assert decided.told_incident == Incident(1, 3, T0, told=True)
    recovered = end_events(run(4, RunState.SUCCEEDED), RULE, incident, None)
    assert recovered.events == (Event.RECOVERY,) and recovered.told_incident == incident
    assert incident.to_record() == {"first_run": 1, "attempts": 3,
                                    "since": "2026-12-01T02:00:00.000000Z"}


def test_a_retry_that_succeeds_closes_the_incident_quietly():
    events, incident = play([run(1, RunState.FAILED), run(2, RunState.SUCCEEDED, attempt=2)])
    assert events == [(), ()] and incident is None


def test_a_cancelled_run_is_final_and_a_rule_without_the_event_says_nothing():
    events, _ = play([run(1, RunState.CANCELLED)])
    assert events == [(Event.FAILURE,)]
    quiet = replace(RULE, on=frozenset({Event.RECOVERY}))
    events, incident = play([run(1, RunState.FAILED, attempt=3), run(2, RunState.SUCCEEDED)],
                            quiet)
    assert events == [(), (Event.RECOVERY,)]  # the incident was opened all the same


def test_slow_and_fast_against_the_learned_percentiles():
    assert Baseline.of([1.0] * 4) is None  # fewer than five successful runs: nothing learned
    baseline = Baseline.of([1.0, 1.1, 0.9, 1.0, 1.2, 1.05])
    assert (baseline.p5, baseline.p95) == (0.9, 1.2)
    assert slowness(run(1, RunState.SUCCEEDED, duration=3.5), baseline, 3.0) is None
    assert slowness(run(1, RunState.SUCCEEDED, duration=4.8), baseline, 3.0) == "slower"
    assert slowness(run(1, RunState.SUCCEEDED, duration=0.2), baseline, 3.0) == "faster"
    slow = run(9, RunState.SUCCEEDED, duration=4.8)
    assert end_events(slow, RULE, None, baseline).events == (Event.SLOW,)
    assert end_events(slow, RULE, None, None).events == ()
    failed_slow = run(9, RunState.FAILED, duration=4.8, attempt=1)
    assert end_events(failed_slow, RULE, None, baseline).events == ()
    text = summary(Event.SLOW, slow, host="box", baseline=baseline)
    assert text == "easyflow on box: w was unusually slow: run 9 took 4s800ms, over 3 x its " \
                   "p95 1s200ms"


def test_twenty_runs_alike_are_never_slow():
    durations = [0.05 + 0.001 * (i % 7) for i in range(20)]
    for i, d in enumerate(durations):
        baseline = Baseline.of(durations[:i])
        assert slowness(run(i, RunState.SUCCEEDED, duration=d), baseline, 3.0) is None


def test_a_failure_says_its_exit_code_or_its_error_in_one_line():
    timed_out = replace(run(3, RunState.TIMED_OUT, attempt=3),
                        error="timed out after 10m\nits step was killed")
    assert summary(Event.FAILURE, timed_out, host="box", incident=Incident(1, 3, T0)) == (
        "easyflow on box: w timed_out (run 3, timed out after 10m) after 3 attempts")
    failed = replace(run(4, RunState.FAILED), exit_code=3)
    assert summary(Event.FAILURE, failed, host="box") == (
        "easyflow on box: w failed (run 4, exit 3) after 1 attempt")


def test_a_missed_deadline_is_late():
    missed = replace(run(1, RunState.SUCCEEDED), deadline=T0, deadline_met=False)
    assert end_events(missed, RULE, None, None).events == (Event.LATE,)
    assert "missed its deadline" in summary(Event.LATE, missed, host="box")


def test_when_a_run_not_ended_becomes_late():
    queued = replace(run(1, RunState.QUEUED), finished_at=None)
    assert late_at(queued, 300) == T0 + timedelta(minutes=5)
    waiting = replace(queued, not_before=T0 + timedelta(hours=8))  # an off-peak wait
    assert late_at(waiting, 300) == T0 + timedelta(hours=8, minutes=5)
    due = replace(queued, deadline=T0 + timedelta(minutes=2))
    assert late_at(due, 300) == T0 + timedelta(minutes=2)
    manual = replace(queued, trigger=Trigger.MANUAL)
    assert late_at(manual, 300) is None
    running = replace(queued, state=RunState.RUNNING)
    assert late_at(running, 300) is None
    text = summary(Event.LATE, queued, host="box", late_after=300)
    assert text == ("easyflow on box: w is late: run 1 (due 2026-12-01T02:00:00.000000Z) has not "
                    "started within 5m")
