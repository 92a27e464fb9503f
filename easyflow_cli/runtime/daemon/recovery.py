"""Runs left `running` by a daemon that died: their processes stopped, their state settled."""

from __future__ import annotations

import errno
import logging
import os
import signal

from easyflow_cli.core.model import PoolName
from easyflow_cli.runtime.clock import Clock
from easyflow_cli.runtime.daemon import settlement
from easyflow_cli.runtime.daemon.settlement import Transition
from easyflow_cli.runtime.process_identity import is_still_ours
from easyflow_cli.storage.store import Store

log = logging.getLogger("easyflow.daemon")


def recover_abandoned_runs(store: Store, clock: Clock) -> None:
    for run in store.queue.running():
        if run.pool is PoolName.FOREGROUND and pid_alive(run.pid):
            continue  # a `run --now` in a terminal, still going
        group = store.queue.step_group(run.id)
        if group is not None and is_still_ours(group):
            kill_group(group.pgid)
        decided = settlement.after_daemon_death(settlement.facts(store, run))
        if decided.transition is not Transition.REQUEUE:
            log.warning("run %d was running when the daemon stopped; marking it failed", run.id)
        settlement.apply(store, run.id, decided, clock.now())


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
