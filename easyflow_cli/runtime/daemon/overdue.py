"""The daemon's own deadline on its workers' runs.

A worker enforces each run's timeout itself; a worker that cannot (stopped by SIGSTOP, stuck in
the kernel, wedged by a call step) would let its run go on for ever. Past its timeout and kill
grace, and a margin for the worker's own clean-up, the daemon kills the worker: its pool
replaces it and the run is settled as timed out (reports.py, settlement.py).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator

from easyflow_cli.core.durations import parse_duration
from easyflow_cli.core.model import StopReason
from easyflow_cli.runtime.pools import Assignment, Pool, PoolWorker
from easyflow_cli.runtime.protocol import RunLimits, SpecEntry

log = logging.getLogger("easyflow.daemon")

# After timeout + kill grace, what a worker may still take: ending the step's group (it waits
# a few seconds for killed processes to go) and sending its report.
MARGIN_S = 5.0


def time_allowed(entry: SpecEntry, limits: RunLimits) -> float:
    """How long a run of this spec may take, from its start, before its worker is killed."""
    own = entry.spec.get("timeout")
    timeout = parse_duration(own) if isinstance(own, str) else limits.timeout
    return timeout + limits.kill_grace + MARGIN_S


def _running(pools: Iterable[Pool]) -> Iterator[tuple[PoolWorker, Assignment, float]]:
    for pool in pools:
        for worker in pool.workers:
            for assignment in worker.assignments.values():
                if assignment.started_mono is not None and assignment.time_allowed is not None:
                    yield worker, assignment, assignment.started_mono + assignment.time_allowed


def stop_overdue(pools: Iterable[Pool], now_mono: float) -> None:
    """Kill the workers of runs past their time; their exits settle the runs."""
    for worker, assignment, due in list(_running(pools)):
        if now_mono >= due and assignment.stop_reason is not StopReason.OVERDUE:
            log.warning("run %d is past its timeout and its worker %s (pid %d) did not stop "
                        "it; killing the worker", assignment.run_id, worker.name, worker.pid)
            assignment.stop_reason = StopReason.OVERDUE
            worker.kill()


def next_overdue_in(pools: Iterable[Pool], now_mono: float) -> float | None:
    """Seconds until the next run would be past its time, if any run is executing."""
    due = [due for _, a, due in _running(pools) if a.stop_reason is not StopReason.OVERDUE]
    return max(0.0, min(due) - now_mono) if due else None
