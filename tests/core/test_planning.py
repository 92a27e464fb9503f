"""Planning a run (pure): mode and reason, deadline, off-peak start, promotion, retries."""

from dataclasses import replace
from datetime import UTC, datetime, timedelta

from easyflow_cli.core.learned import Expectation, RunSample, Spread, learn
from easyflow_cli.core.model import CostPriority, Mode, ModeReason, Run, RunState, Trigger
from easyflow_cli.core.offpeak import parse_window
from easyflow_cli.core.planning import QueuePolicy, off_peak_start, plan_retry, plan_run
from easyflow_cli.core.spec import parse_workflow_text

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
POLICY = QueuePolicy()


def expected(p90: timedelta, p50: timedelta | None = None, error: float | None = None):
    """A fixed expectation in every mode: `p50` and `p90`, recently missed by `error` s."""
    learned = replace(learn([RunSample(NOW, 1.0, 0.0, None)] * 5), error_s=error)
    duration = Spread((p50 or p90).total_seconds(), p90.total_seconds())
    figures = Expectation(duration, Spread(0.0, 0.0), Spread(0.0, 0.0), False, "fixed", learned)
    return lambda mode: figures


def spec(name="a", extra=""):
    return parse_workflow_text(f'name = "{name}"\n{extra}\n[[steps]]\nrun = ["true"]\n')


def test_plan_manual_run_is_real_time():
    run = plan_run(spec(), trigger=Trigger.MANUAL, now=NOW, policy=POLICY)
    assert (run.mode, run.mode_reason, run.trigger) == (Mode.REAL_TIME, ModeReason.MANUAL,
                                                        Trigger.MANUAL)
    assert (run.workflow, run.enqueued_at, run.cost_priority) == ("a", NOW, CostPriority.NORMAL)
    assert run.promote_at is None and run.not_before is None and run.deadline is None
    assert (run.attempt, run.retry_of, run.schedule_id) == (1, None, None)


def test_plan_deadline_after_and_promotion_time():
    wf = spec(extra='deadline_after = "3h"\ncost_priority = "high"')
    run = plan_run(wf, trigger=Trigger.SCHEDULE, now=NOW, policy=POLICY, schedule_id=4)
    assert (run.mode, run.cost_priority, run.schedule_id) == (Mode.ECO, CostPriority.HIGH, 4)
    assert run.deadline == NOW + timedelta(hours=3)
    assert run.promote_at == NOW + timedelta(hours=2)
    later = plan_run(wf, trigger=Trigger.SCHEDULE, now=NOW, policy=POLICY, deadline_after=7200)
    assert later.deadline == NOW + timedelta(hours=2)


def test_plan_promotion_time_makes_room_for_the_p90_duration():
    run = plan_run(spec(), trigger=Trigger.SCHEDULE, now=NOW, policy=POLICY,
                   deadline=NOW + timedelta(hours=5),
                   expected=expected(timedelta(hours=2), p50=timedelta(minutes=30)))
    assert run.promote_at == NOW + timedelta(hours=3)


def test_plan_promotion_time_leaves_the_prediction_error_as_margin():
    run = plan_run(spec(), trigger=Trigger.SCHEDULE, now=NOW, policy=POLICY,
                   deadline=NOW + timedelta(hours=5),
                   expected=expected(timedelta(hours=2), error=600.0))
    assert run.promote_at == NOW + timedelta(hours=2, minutes=50)


def test_plan_asks_for_the_expectation_of_the_mode_planned_and_only_with_a_deadline():
    asked = []

    def recorder(mode):
        asked.append(mode)
        return expected(timedelta(hours=2))(mode)

    plan_run(spec(), trigger=Trigger.SCHEDULE, now=NOW, policy=POLICY, expected=recorder)
    assert asked == []
    plan_run(spec(), trigger=Trigger.SCHEDULE, now=NOW, policy=POLICY, expected=recorder,
             deadline=NOW + timedelta(hours=5))
    assert asked == [Mode.ECO]


def test_plan_near_deadline_is_promoted_at_once():
    run = plan_run(spec(), trigger=Trigger.SCHEDULE, now=NOW, policy=POLICY,
                   deadline=NOW + timedelta(minutes=30))
    assert (run.mode, run.mode_reason, run.promote_at) == (Mode.REAL_TIME, ModeReason.PROMOTED,
                                                           None)


def test_plan_eco_waits_for_off_peak_unless_deadline_would_be_missed():
    policy = QueuePolicy(off_peak=parse_window("22:00-06:00"))
    local_noon = datetime(2026, 11, 25, 12, 0).astimezone()
    opens = policy.off_peak.next_start(local_noon)
    assert opens > local_noon
    run = plan_run(spec(), trigger=Trigger.SCHEDULE, now=local_noon, policy=policy)
    assert run.not_before == opens
    tight = plan_run(spec(), trigger=Trigger.SCHEDULE, now=local_noon, policy=policy,
                     deadline=opens + timedelta(hours=2), expected=expected(timedelta(hours=3)))
    assert tight.not_before is None
    manual = plan_run(spec(), trigger=Trigger.MANUAL, now=local_noon, policy=policy)
    assert manual.not_before is None


def test_off_peak_start_keeps_a_later_not_before_and_starts_now_inside_the_window():
    window = parse_window("22:00-06:00")
    local_noon = datetime(2026, 11, 25, 12, 0).astimezone()
    opens = window.next_start(local_noon)
    much_later = opens + timedelta(days=1)
    assert off_peak_start(window, local_noon, None, None, much_later) == much_later
    assert off_peak_start(window, opens, None, None, None) is None


def queued_run(**fields) -> Run:
    values = dict(id=7, workflow="a", trigger=Trigger.SCHEDULE, mode=Mode.ECO,
                  mode_reason=ModeReason.SCHEDULE, cost_priority=CostPriority.LOW,
                  deadline=NOW + timedelta(hours=4), state=RunState.FAILED, enqueued_at=NOW,
                  promote_at=NOW + timedelta(hours=3), schedule_id=2)
    return Run(**{**values, **fields})


def test_plan_retry_repeats_the_run_after_its_backoff():
    later = NOW + timedelta(minutes=5)
    retry = plan_retry(queued_run(), spec(extra='retries = 2\nretry_backoff = "30s"'), later)
    assert (retry.workflow, retry.trigger, retry.mode, retry.mode_reason) == (
        "a", Trigger.RETRY, Mode.ECO, ModeReason.SCHEDULE)
    assert (retry.cost_priority, retry.deadline, retry.promote_at) == (
        CostPriority.LOW, NOW + timedelta(hours=4), NOW + timedelta(hours=3))
    assert (retry.enqueued_at, retry.not_before) == (later, later + timedelta(seconds=30))
    assert (retry.attempt, retry.retry_of, retry.schedule_id) == (2, 7, 2)


def test_plan_retry_stops_after_the_last_attempt_and_needs_no_backoff():
    wf = spec(extra="retries = 1")
    assert plan_retry(queued_run(attempt=2), wf, NOW) is None
    assert plan_retry(queued_run(attempt=1), wf, NOW).not_before is None


def test_plan_retry_only_for_a_failed_or_timed_out_run_and_keeps_what_it_re_runs():
    wf = spec(extra="retries = 3")
    for state in (RunState.SUCCEEDED, RunState.CANCELLED):
        assert plan_retry(queued_run(state=state), wf, NOW) is None
    timed_out = plan_retry(queued_run(state=RunState.TIMED_OUT, rerun_of=4), wf, NOW)
    assert (timed_out.attempt, timed_out.retry_of, timed_out.rerun_of) == (2, 7, 4)


def test_plan_run_links_a_re_run_to_the_run_it_repeats():
    rerun = plan_run(spec(), trigger=Trigger.MANUAL, now=NOW, policy=QueuePolicy(), rerun_of=9)
    assert (rerun.trigger, rerun.attempt, rerun.retry_of, rerun.rerun_of) == (
        Trigger.MANUAL, 1, None, 9)


def test_plan_eco_under_a_forecast_records_the_window_and_why():
    from easyflow_cli.core.config import Optimise
    from easyflow_cli.core.eco_plan import RunEstimate, Series
    from easyflow_cli.core.forecast import Forecast, Interval, Unit

    hour = timedelta(hours=1)
    prices = Forecast(Unit.PER_KWH, "tariff.csv", tuple(
        Interval(NOW + i * hour, NOW + (i + 1) * hour, v) for i, v in enumerate([0.3, 0.1, 0.2])))
    policy = QueuePolicy(optimise=Optimise.COST, series=Series(Optimise.COST, prices))
    run = plan_run(spec(), trigger=Trigger.SCHEDULE, now=NOW, policy=policy,
                   estimate=RunEstimate(hour, 0.5))
    assert run.not_before == NOW + hour
    assert run.not_before_reason.startswith("cheapest window ")
    real_time = plan_run(spec(), trigger=Trigger.MANUAL, now=NOW, policy=policy,
                         estimate=RunEstimate(hour, 0.5))
    assert (real_time.not_before, real_time.not_before_reason) == (None, None)


def test_plan_eco_at_the_off_peak_window_says_so():
    policy = QueuePolicy(off_peak=parse_window("22:00-06:00"))
    local_noon = datetime(2026, 11, 25, 12, 0).astimezone()
    run = plan_run(spec(), trigger=Trigger.SCHEDULE, now=local_noon, policy=policy)
    assert run.not_before_reason == "off-peak window 22:00-06:00"
