"""Run a queued run here, in this process, when no daemon is up to take it (`run --now`)."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable
from pathlib import Path
from types import FrameType
from typing import BinaryIO

from easyflow_cli.core.config import Config
from easyflow_cli.core.errors import EasyflowError
from easyflow_cli.core.model import ClaimedRun, PoolName, Run, RunState
from easyflow_cli.core.paths import run_log_path
from easyflow_cli.core.spec import WorkflowSpec
from easyflow_cli.core.timeutil import utcnow
from easyflow_cli.runtime.executor import execute_workflow, limits_for
from easyflow_cli.runtime.process_identity import group_of
from easyflow_cli.runtime.processes import become_subreaper, lower_priority
from easyflow_cli.runtime.rapl import EnergyMeter
from easyflow_cli.runtime.worker import open_run_log
from easyflow_cli.storage.run_queue import HeldByLimit, RunEnd, RunStart
from easyflow_cli.storage.store import Store

LIMIT_POLL_S = 0.2


def _claim_when_room(store: Store, run: Run,
                     on_wait: Callable[[HeldByLimit], None]) -> list[ClaimedRun]:
    told = False
    while True:
        claimed = store.queue.claim_ids([run.id], now=utcnow(), pool=PoolName.FOREGROUND,
                                        worker=f"cli:{os.getpid()}")
        if claimed:
            return claimed
        held = [h for h in store.queue.held_by_limit() if h.workflow == run.workflow]
        if store.queue.get(run.id).state is not RunState.QUEUED or not held:
            raise EasyflowError(f"run {run.id} was taken by another runner")
        if not told:
            on_wait(held[0])
            told = True
        time.sleep(LIMIT_POLL_S)


class _StopFlag:
    """Signal handlers only set this flag; the step loop notices within half a second."""

    def __init__(self) -> None:
        self.stopped = False

    def __call__(self, signum: int, frame: FrameType | None) -> None:
        self.stopped = True


def run_in_foreground(store: Store, home: Path, run: Run, spec: WorkflowSpec, config: Config,
                      echo: BinaryIO | None,
                      on_wait: Callable[[HeldByLimit], None] = lambda held: None) -> Run:
    """Claim the queued run, execute it with its mode's profile, record and return the result.

    While its workflow has its `max_concurrent` runs running, wait for one to end (there is no
    daemon to wake us: look again every LIMIT_POLL_S); `on_wait` is told once."""
    queue = store.queue
    claimed = _claim_when_room(store, run, on_wait)
    limits = limits_for(config, run.mode)
    become_subreaper()
    lower_priority(limits.nice)
    log_path = run_log_path(home, run.id)
    stop = _StopFlag()
    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        with open_run_log(str(log_path)) as log:
            started = utcnow()
            window = config.tariff_window
            off_peak = window.contains(started) if window else None
            queue.start([RunStart(run.id, started, claimed[0].enqueued_at, os.getpid(),
                                  str(log_path), off_peak)])
            outcome = execute_workflow(
                spec, limits, log, echo=echo, cancelled=lambda: stop.stopped,
                on_step_start=lambda step, pid: queue.record_step(run.id, group_of(pid)),
                meter=EnergyMeter(), run_id=run.id,
            )
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    queue.finish([RunEnd(run.id, outcome, utcnow(), started, claimed[0].deadline)])
    return queue.get(run.id)
