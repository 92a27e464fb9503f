"""Runs left `running` by a daemon that died: their processes stopped, their state settled."""

from __future__ import annotations

import errno
import os
import signal
from datetime import datetime
from pathlib import Path

from easyflow_cli.core.model import PoolName, Run
from easyflow_cli.runtime.clock import Clock
from easyflow_cli.runtime.daemon import settlement
from easyflow_cli.runtime.daemon.containment import MARKS_ONLY, Containment
from easyflow_cli.runtime.process_identity import is_still_ours
from easyflow_cli.runtime.start_slot import discard, read_slot, slots_in
from easyflow_cli.storage.daemon_tokens import known_tokens
from easyflow_cli.storage.run_queue import RunStart
from easyflow_cli.storage.store import Store

REQUEUED_NOTE = "re-queued after a daemon restart"
FAILED_ERROR = "the daemon stopped while this run was running (found at start-up)"


def recover_abandoned_runs(store: Store, clock: Clock, containment: Containment | None = None,
                           slots: Path | None = None) -> None:
    """Kill what the runs a dead daemon left running had started, then settle them all; the
    dead workers' start slots (start_slot.py) say which runs' steps had begun."""
    abandoned = []
    for run in store.queue.running():
        if run.pool is PoolName.FOREGROUND and pid_alive(run.pid):
            continue  # a `run --now` in a terminal, still going
        group = store.queue.step_group(run.id)
        if group is not None and is_still_ours(group):
            kill_group(group.pgid)
        abandoned.append(run)
    ids = [run.id for run in abandoned]
    # Escapees of the groups (setsid, double fork), now without their dead worker.
    (containment or MARKS_ONLY).stop(ids, known_tokens(store))
    left = slots_in(slots) if slots else []
    begun = set().union(*(read_slot(path) for path in left))
    count_begun_steps(store, abandoned, begun, clock.now())
    settlement.settle_abandoned(store, ids, clock.now(), note=REQUEUED_NOTE, error=FAILED_ERROR)
    discard(left)


def count_begun_steps(store: Store, runs: list[Run], begun: set[int], now: datetime) -> None:
    """Runs whose step had begun, though their start never reached the database, are started
    runs: settled as failed (and retried if allowed), never run a second time."""
    starts = [RunStart(run.id, now, run.enqueued_at, run.pid) for run in runs
              if run.id in begun and run.started_at is None]
    store.queue.start(starts)


def pid_alive(pid: int | None) -> bool:
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def kill_group(pgid: int) -> None:
    try:
        os.killpg(pgid, signal.SIGKILL)
    except OSError as exc:
        if exc.errno not in (errno.ESRCH, errno.EPERM):
            raise
