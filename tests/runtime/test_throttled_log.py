"""A repeating warning: the first at once, then one line per interval with a count."""

from __future__ import annotations

import logging

from easyflow_cli.runtime.daemon.throttled_log import ThrottledWarning


class Ticks:
    def __init__(self) -> None:
        self.mono = 100.0

    def monotonic(self) -> float:
        return self.mono


def lines(caplog) -> list[str]:
    return [record.getMessage() for record in caplog.records]


def test_a_burst_is_one_line_at_once_and_one_with_the_rest_after_the_interval(caplog):
    clock = Ticks()
    warning = ThrottledWarning(logging.getLogger("test.throttle"), clock, "refused %d",
                               interval_s=10)
    with caplog.at_level(logging.WARNING):
        for _ in range(2000):
            warning.happened()
        assert lines(caplog) == ["refused 1"]
        assert warning.due_at() == 110.0
        clock.mono = 109.9
        warning.flush_if_due()
        assert lines(caplog) == ["refused 1"]
        clock.mono = 110.0
        warning.flush_if_due()
        assert lines(caplog) == ["refused 1", "refused 1999"]
        assert warning.due_at() is None  # nothing pending: the loop need not wake for it
        clock.mono = 125.0
        warning.happened()  # quiet long enough: said at once again
        assert lines(caplog) == ["refused 1", "refused 1999", "refused 1"]
