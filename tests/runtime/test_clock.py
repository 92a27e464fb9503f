"""The clock-step watch: a step of the wall clock against the monotonic one is seen once."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from easyflow_cli.runtime.clock import STEP_TOLERANCE_S, StepWatch, SystemClock


class SetClock:
    def __init__(self) -> None:
        self.wall = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
        self.mono = 50.0

    def now(self) -> datetime:
        return self.wall

    def monotonic(self) -> float:
        return self.mono


def test_a_step_is_reported_once_and_time_passing_is_no_step():
    clock = SetClock()
    watch = StepWatch(clock)
    clock.wall += timedelta(hours=3)
    clock.mono += 3 * 3600
    assert watch.step() == 0.0
    clock.wall -= timedelta(hours=1)
    assert watch.step() == -3600.0
    assert watch.step() == 0.0
    clock.wall += timedelta(days=2, seconds=5)
    clock.mono += 5
    assert watch.step() == 2 * 86400.0


def test_slewing_below_the_tolerance_is_left_alone():
    clock = SetClock()
    watch = StepWatch(clock)
    for _ in range(10):
        clock.wall += timedelta(seconds=STEP_TOLERANCE_S / 2)
        assert watch.step() == 0.0


def test_the_system_clock_does_not_step_by_itself():
    assert StepWatch(SystemClock()).step() == 0.0
