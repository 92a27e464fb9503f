"""A warning that may repeat thousands of times a second (a peer hammering the socket, a
descriptor shortage): logged at most once per interval, with how many times it happened.

The first occurrence is logged at once; the ones after it within the interval are counted and
logged as one line when the interval is over (`flush`, which the loop calls when `due_at` says).
"""

from __future__ import annotations

import logging

from easyflow_cli.runtime.clock import Clock


class ThrottledWarning:
    def __init__(self, log: logging.Logger, clock: Clock, what: str,
                 interval_s: float = 10.0) -> None:
        self.log = log
        self.clock = clock
        self.what = what  # "refused %d connection(s) from another user", say
        self.interval_s = interval_s
        self.pending = 0  # occurrences not logged yet
        self.quiet_until: float | None = None  # monotonic: no line before this

    def happened(self) -> None:
        self.pending += 1
        if self.quiet_until is None or self.clock.monotonic() >= self.quiet_until:
            self.flush()

    def flush(self) -> None:
        """Log what is pending (if anything) and stay quiet for an interval."""
        if not self.pending:
            self.quiet_until = None
            return
        self.log.warning(self.what, self.pending)
        self.pending = 0
        self.quiet_until = self.clock.monotonic() + self.interval_s

    def due_at(self) -> float | None:
        """When counted occurrences are to be logged (monotonic), if any wait."""
        return self.quiet_until if self.pending else None

    def flush_if_due(self) -> None:
        due = self.due_at()
        if due is not None and self.clock.monotonic() >= due:
            self.flush()
