"""Stopping the daemon without losing a run: a state machine driven by the monotonic clock.

NONE: serving. GRACE: nothing new starts; what was handed over but not started goes back to
the queue; running runs have `drain_grace` to finish. STOPPING: they are cancelled and have
`kill_grace` (and a little more) to stop. KILLING: the workers that still have not exited are
killed; the daemon exits once they are gone, or gives up on them shortly after.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from enum import Enum

from easyflow_cli.runtime.clock import Clock
from easyflow_cli.runtime.pools import PoolWorker, StopReason
from easyflow_cli.runtime.protocol import CancelOrder

log = logging.getLogger("easyflow.daemon")

# Past kill_grace the worker has already killed its step; this is for it to report and exit.
STOP_MARGIN_S = 2.0
# Killed workers are gone in well under this; their exit is then noticed through their pipes.
KILL_WAIT_S = 5.0
# How often a draining daemon looks whether its workers are gone, at the latest.
CHECK_EVERY_S = 0.5


class DrainPhase(Enum):
    NONE = "none"
    GRACE = "grace"
    STOPPING = "stopping"
    KILLING = "killing"


class Drain:
    def __init__(self, clock: Clock, workers: Callable[[], list[PoolWorker]]) -> None:
        self.clock = clock
        self.workers = workers
        self.phase = DrainPhase.NONE
        self.until: float | None = None  # monotonic: when this phase is over

    @property
    def active(self) -> bool:
        return self.phase is not DrainPhase.NONE

    def begin(self, grace: float) -> None:
        self.phase = DrainPhase.GRACE
        self.until = self.clock.monotonic() + grace
        log.info("stopping: no new runs; waiting up to %.0fs for running runs", grace)
        for worker in self.workers():
            if any(not assignment.started for assignment in worker.assignments.values()):
                worker.release()  # what has not started goes back to the queue
            worker.retire()

    def advance(self, kill_grace: float) -> None:
        """Past the grace: stop what still runs; past kill_grace too: kill the workers."""
        if self.until is None or self.clock.monotonic() < self.until:
            return
        if self.phase is DrainPhase.GRACE:
            self.phase = DrainPhase.STOPPING
            for worker in self.workers():
                _stop_runs(worker)
            self.until = self.clock.monotonic() + kill_grace + STOP_MARGIN_S
        elif self.phase is DrainPhase.STOPPING:
            self.phase = DrainPhase.KILLING
            for worker in self.workers():
                log.warning("worker %s did not stop in time; killing it", worker.name)
                worker.kill()
            self.until = self.clock.monotonic() + KILL_WAIT_S

    def waits(self) -> list[float]:
        """Seconds until the drain wants the loop awake again."""
        if self.until is None:
            return []
        return [self.until - self.clock.monotonic(), CHECK_EVERY_S]

    def finished(self) -> bool:
        if not self.active:
            return False
        return not self.workers() or (
            self.phase is DrainPhase.KILLING and self.until is not None
            and self.clock.monotonic() >= self.until)


def _stop_runs(worker: PoolWorker) -> None:
    for assignment in worker.assignments.values():
        if assignment.stop_reason is not StopReason.SHUTDOWN:
            assignment.stop_reason = StopReason.SHUTDOWN
            worker.send(CancelOrder(assignment.run_id))
