"""A workflow's expectation in a mode: its own runs in that mode when there are enough, else
its runs in any mode, else the default."""

from datetime import UTC, datetime, timedelta

from easyflow_cli.core.config import CostConfig
from easyflow_cli.core.learned import MIN_RUNS, RunSample, Spread
from easyflow_cli.core.model import Mode
from easyflow_cli.storage.learned_durations import expectation

T0 = datetime(2026, 12, 1, tzinfo=UTC)


class History:
    """What `RunQueue.recent_successes` reads, per mode, newest first."""

    def __init__(self, **by_mode: list[float]) -> None:
        self.by_mode = {Mode(mode.replace("_", "-")): values for mode, values in by_mode.items()}

    def recent_successes(self, workflow, mode=None, limit=50):
        modes = [mode] if mode else list(self.by_mode)
        values = [v for m in modes for v in self.by_mode.get(m, [])]
        return [RunSample(T0 - timedelta(minutes=i), v, v, None) for i, v in enumerate(values)]


def test_a_mode_with_enough_runs_is_learned_from_its_own():
    queue = History(eco=[90.0] * MIN_RUNS, real_time=[30.0] * MIN_RUNS)
    figures = expectation(queue, "a", Mode.ECO, CostConfig())
    assert figures.duration == Spread(90.0, 90.0) and figures.basis == "learned from 5 eco runs"


def test_a_mode_with_few_runs_borrows_every_mode():
    queue = History(eco=[90.0], real_time=[30.0] * MIN_RUNS)
    figures = expectation(queue, "a", Mode.ECO, CostConfig())
    assert figures.enough and figures.basis == "learned from 6 runs"


def test_few_runs_in_all_fall_back_to_their_median_then_the_default():
    few = expectation(History(eco=[10.0, 20.0]), "a", Mode.BALANCED, CostConfig())
    assert not few.enough and few.duration == Spread(15.0, 15.0)
    none = expectation(History(), "a", Mode.ECO, CostConfig(default_duration=42.0))
    assert none.duration == Spread(42.0, 42.0)
