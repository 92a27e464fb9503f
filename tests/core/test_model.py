"""The run record: its fields and how JSON and CSV see them."""

from datetime import UTC, datetime

from easyflow_cli.core.model import (
    RUN_FIELDS,
    CostPriority,
    Mode,
    ModeReason,
    PoolName,
    Run,
    RunState,
    Trigger,
)

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)

# The fields the README documents for `runs show --json`, in the order it prints them.
DOCUMENTED = (
    "id", "workflow", "trigger", "mode", "mode_reason", "cost_priority", "deadline", "state",
    "enqueued_at", "not_before", "promote_at", "claimed_at", "started_at", "finished_at",
    "exit_code", "attempt", "retry_of", "rerun_of", "followed", "schedule_id", "batch_id", "pool",
    "worker", "pid", "pgid", "cpu_user_s", "cpu_system_s", "peak_rss_kb", "queue_wait_s",
    "duration_s", "off_peak", "deadline_met", "energy_j", "error", "log_path", "not_before_reason",
)


def test_run_fields_are_the_documented_record():
    assert RUN_FIELDS == DOCUMENTED


def test_to_record_gives_strings_for_enums_and_iso_utc_for_times():
    run = Run(3, "a", Trigger.CATCH_UP, Mode.BALANCED, ModeReason.DEFAULT, CostPriority.HIGH,
              None, RunState.TIMED_OUT, NOW, claimed_at=NOW.astimezone(),
              pool=PoolName.FOREGROUND, off_peak=False, deadline_met=True, duration_s=1.5)
    record = run.to_record()
    assert list(record) == list(DOCUMENTED)
    assert (record["trigger"], record["mode"], record["mode_reason"], record["state"]) == (
        "catch-up", "balanced", "default", "timed_out")
    assert type(record["mode"]) is str and type(record["pool"]) is str
    assert (record["cost_priority"], record["pool"]) == ("high", "foreground")
    assert record["enqueued_at"] == record["claimed_at"] == "2026-11-25T12:00:00.000000Z"
    assert (record["deadline"], record["off_peak"], record["deadline_met"]) == (None, False, True)
    assert (record["attempt"], record["duration_s"], record["error"]) == (1, 1.5, None)


def test_pool_names_of_modes():
    assert [PoolName.of(mode) for mode in Mode] == [PoolName.REAL_TIME, PoolName.BALANCED,
                                                    PoolName.ECO]
