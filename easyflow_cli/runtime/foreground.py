"""Run a queued run here, in this process, when no daemon is up to take it (`run --now`), and
its retries after their backoff, as the daemon would."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from types import FrameType
from typing import BinaryIO

from easyflow_cli.core.config import Config
from easyflow_cli.core.errors import EasyflowError
from easyflow_cli.core.model import ClaimedRun, Mode, PoolName, Run, RunState
from easyflow_cli.core.notify import NoticeBook
from easyflow_cli.core.paths import run_log_path
from easyflow_cli.core.planning import plan_retry
from easyflow_cli.core.spec import WorkflowSpec
from easyflow_cli.core.timeutil import utcnow
from easyflow_cli.runtime.executor import execute_workflow, limits_for
from easyflow_cli.runtime.forecasts import ForecastFiles
from easyflow_cli.runtime.process_identity import group_of
from easyflow_cli.runtime.processes import become_subreaper, lower_priority
from easyflow_cli.runtime.rapl import EnergyMeter
from easyflow_cli.runtime.run_marker import new_token
from easyflow_cli.runtime.worker import open_run_log
from easyflow_cli.storage.daemon_tokens import newest_token, record_token
from easyflow_cli.storage.run_queue import HeldByLimit, RunEnd, RunStart
from easyflow_cli.storage.store import Store

# How soon a signal during a retry's backoff is noticed.
STOP_CHECK_S = 0.1
LIMIT_POLL_S = 0.2


def _claim_when_room(store: Store, run: Run, on_wait: Callable[[HeldByLimit], None],
                     stop: _StopFlag) -> list[ClaimedRun]:
    """The run, claimed; none if stopped (SIGINT, SIGTERM) while it waited for room."""
    told = False
    while not stop.stopped:
        claimed = store.queue.claim_ids([run.id], now=utcnow(), pool=PoolName.FOREGROUND,
                                        worker=f"cli:{os.getpid()}")
        if claimed:
            return claimed
        held = [h for h in store.queue.held_by_limit() if h.workflow == run.workflow]
        if store.queue.get(run.id).state is not RunState.QUEUED or not held:
            raise TakenElsewhere(run.id)
        if not told:
            on_wait(held[0])
            told = True
        time.sleep(LIMIT_POLL_S)
    return []


class _StopFlag:
    """Signal handlers only set this flag; the step loop notices within half a second."""

    def __init__(self) -> None:
        self.stopped = False

    def __call__(self, signum: int, frame: FrameType | None) -> None:
        self.stopped = True


class TakenElsewhere(EasyflowError):
    """A run this process queued was claimed by another runner (a daemon that started
    meanwhile), to be followed there."""

    def __init__(self, run_id: int) -> None:
        super().__init__(f"run {run_id} was taken by another runner")
        self.run_id = run_id


RetryNotice = Callable[[Run, Run], None]  # (the attempt that ended, the retry queued for it)


def run_in_foreground(store: Store, home: Path, run: Run, spec: WorkflowSpec, config: Config,
                      echo: BinaryIO | None,
                      on_wait: Callable[[HeldByLimit], None] = lambda held: None,
                      on_retry: RetryNotice | None = None) -> Run:
    """Execute the queued run here, then its retries as its workflow allows (each after its
    backoff, slept here); the last attempt as it ended. SIGINT or SIGTERM stops the attempt
    that runs (cancelled), or cancels the retry that waits.

    While its workflow has its `max_concurrent` runs running, an attempt waits for one to end
    (there is no daemon to wake us: look again every LIMIT_POLL_S); `on_wait` is told once."""
    stop = _StopFlag()
    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        ended = _attempt(store, home, run, spec, config, echo, stop, on_wait)
        while (retry := store.queue.retried_as(ended.id)) is not None:
            if on_retry is not None:
                on_retry(ended, retry)
            if not _sleep_until(retry.not_before, stop):
                store.queue.cancel([retry.id], now=utcnow(), error="cancelled by user")
                return store.queue.get(retry.id)
            ended = _attempt(store, home, retry, spec, config, echo, stop, on_wait)
        return ended
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _attempt(store: Store, home: Path, run: Run, spec: WorkflowSpec, config: Config,
             echo: BinaryIO | None, stop: _StopFlag,
             on_wait: Callable[[HeldByLimit], None]) -> Run:
    """Claim the queued run (when its workflow has room), execute it with its mode's profile,
    record and return the result."""
    queue = store.queue
    # Its end's events go to the outbox, for the daemon to deliver.
    queue.notices = NoticeBook.build(config.notify, {m: config.pool(m).timeout for m in Mode},
                                     [(spec.name, spec.notify, spec.retries)])
    queue.pricing = ForecastFiles(config)
    claimed = _claim_when_room(store, run, on_wait, stop)
    if not claimed:
        queue.cancel([run.id], now=utcnow(), error="cancelled by user")
        return queue.get(run.id)
    limits = limits_for(config, run.mode)
    become_subreaper()
    lower_priority(limits.nice)
    log_path = run_log_path(home, run.id)
    with open_run_log(str(log_path)) as log:
        started = utcnow()
        window = config.tariff_window
        off_peak = window.contains(started) if window else None
        queue.start([RunStart(run.id, started, claimed[0].enqueued_at, os.getpid(),
                              str(log_path), off_peak)])
        outcome = execute_workflow(
            spec, limits, log, echo=echo, cancelled=lambda: stop.stopped,
            on_step_start=lambda step, pid: queue.record_step(run.id, group_of(pid)),
            meter=EnergyMeter(), run_id=run.id, token=_token(store),
        )
    return _finish(store, RunEnd(run.id, outcome, utcnow(), started, claimed[0].deadline), spec)


def _finish(store: Store, end: RunEnd, spec: WorkflowSpec) -> Run:
    """Record the end, and queue the next attempt if one is due, in one transaction (as the
    daemon does): a crash in between cannot lose the retry."""
    queue = store.queue
    with store.write():
        queue.finish([end])
        ended = queue.get(end.run_id)
        planned = plan_retry(ended, spec, end.at)
        if planned is not None:
            queue.enqueue([planned])
    return ended


def _token(store: Store) -> str:
    """The newest daemon's token (a daemon settles the run if this process dies), or a new one
    where no daemon ever ran."""
    token = newest_token(store)
    if token is None:
        token = new_token()
        record_token(store, token, utcnow())
    return token


def _sleep_until(moment: datetime | None, stop: _StopFlag) -> bool:
    """Wait here until `moment` (timed on the monotonic clock); False if stopped first."""
    left = 0.0 if moment is None else (moment - utcnow()).total_seconds()
    until = time.monotonic() + left
    while not stop.stopped and (remaining := until - time.monotonic()) > 0:
        time.sleep(min(remaining, STOP_CHECK_S))
    return not stop.stopped
