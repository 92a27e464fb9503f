"""The seed's mode rules and scenarios, as pure functions with time passed in."""

from datetime import UTC, datetime, timedelta

from freezegun import freeze_time

from easyflow_cli.core.model import Mode, ModeReason, Trigger
from easyflow_cli.core.modes import promotion_time, resolve_mode, should_promote

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)


def test_explicit_override_beats_everything():
    result = resolve_mode(trigger=Trigger.MANUAL, now=NOW, override=Mode.ECO,
                          workflow_mode=Mode.BALANCED)
    assert (result.mode, result.reason) == (Mode.ECO, ModeReason.EXPLICIT)


def test_workflow_mode_beats_trigger():
    result = resolve_mode(trigger=Trigger.MANUAL, now=NOW, workflow_mode=Mode.ECO)
    assert (result.mode, result.reason) == (Mode.ECO, ModeReason.WORKFLOW)


def test_scenario_1_user_clicks_run_now():
    result = resolve_mode(trigger=Trigger.MANUAL, now=NOW)
    assert (result.mode, result.reason) == (Mode.REAL_TIME, ModeReason.MANUAL)


def test_scenario_2_scheduled_daily_report_is_eco():
    for trigger in (Trigger.SCHEDULE, Trigger.CATCH_UP):
        result = resolve_mode(trigger=trigger, now=NOW)
        assert (result.mode, result.reason) == (Mode.ECO, ModeReason.SCHEDULE)


def test_schedule_beats_near_deadline_at_resolution():
    # The seed checks the trigger before the deadline; promotion then handles the deadline.
    result = resolve_mode(trigger=Trigger.SCHEDULE, now=NOW, deadline=NOW + timedelta(minutes=5))
    assert result.mode == Mode.ECO


def test_near_deadline_without_trigger_rule_is_real_time():
    result = resolve_mode(trigger=Trigger.RETRY, now=NOW, deadline=NOW + timedelta(minutes=59))
    assert (result.mode, result.reason) == (Mode.REAL_TIME, ModeReason.DEADLINE)


def test_far_deadline_is_balanced_default():
    result = resolve_mode(trigger=Trigger.RETRY, now=NOW, deadline=NOW + timedelta(hours=3))
    assert (result.mode, result.reason) == (Mode.BALANCED, ModeReason.DEFAULT)
    assert resolve_mode(trigger=Trigger.RETRY, now=NOW).mode == Mode.BALANCED


def test_scenario_3_promotion_within_one_hour():
    deadline = NOW + timedelta(hours=3)
    assert promotion_time(deadline) == deadline - timedelta(hours=1)
    assert not should_promote(Mode.ECO, deadline, NOW)
    assert not should_promote(Mode.ECO, deadline, deadline - timedelta(minutes=61))
    assert should_promote(Mode.ECO, deadline, deadline - timedelta(minutes=60))
    assert should_promote(Mode.BALANCED, deadline, deadline - timedelta(minutes=1))
    assert not should_promote(Mode.REAL_TIME, deadline, deadline)
    assert not should_promote(Mode.ECO, None, NOW)


def test_promotion_when_the_time_needed_no_longer_fits():
    deadline = NOW + timedelta(hours=3)
    needed = timedelta(hours=2)
    assert promotion_time(deadline, timedelta(hours=1), needed) == NOW + timedelta(hours=1)
    assert should_promote(Mode.ECO, deadline, NOW + timedelta(hours=1), needed=needed)
    assert not should_promote(Mode.ECO, deadline, NOW + timedelta(minutes=59), needed=needed)


def test_custom_promote_within():
    deadline = NOW + timedelta(minutes=20)
    assert not should_promote(Mode.ECO, deadline, NOW, timedelta(minutes=10))
    with freeze_time(NOW + timedelta(minutes=10)):
        now = datetime.now(UTC)
        assert should_promote(Mode.ECO, deadline, now, timedelta(minutes=10))
