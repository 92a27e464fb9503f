"""Runs a `run --now` executes in its terminal (pool `foreground`) while the daemon is up: when
that process dies without recording the end, what its step left running is killed and the run
is settled here instead of staying `running` until the next daemon start.

The check is a query of the running runs and a look at /proc for each foreground one, made
every `CHECK_EVERY_S` on the daemon's clock while there are such runs, and otherwise only when
the loop is awake anyway (a run found then is watched again).
"""

from __future__ import annotations

import logging
import os
from datetime import UTC, datetime, timedelta

from easyflow_cli.core.model import Outcome, PoolName, Run, RunState
from easyflow_cli.runtime.clock import Clock
from easyflow_cli.runtime.daemon import settlement
from easyflow_cli.runtime.daemon.containment import MARKS_ONLY
from easyflow_cli.runtime.daemon.recovery import kill_group
from easyflow_cli.runtime.daemon.settlement import Settlement, Transition
from easyflow_cli.runtime.process_identity import is_still_ours
from easyflow_cli.storage.daemon_tokens import known_tokens
from easyflow_cli.storage.store import Store

log = logging.getLogger("easyflow.daemon")

CHECK_EVERY_S = 30.0
# /proc gives a process's start to the clock tick and the boot time to the second.
START_SLACK = timedelta(seconds=2)


class ForegroundWatch:
    def __init__(self, store: Store, clock: Clock) -> None:
        self.store = store
        self.clock = clock
        self.next_check = clock.monotonic()  # monotonic
        self.watching = True  # wake the loop for the next check

    def due_at(self) -> float | None:
        return self.next_check if self.watching else None

    def check_if_due(self) -> None:
        if self.clock.monotonic() < self.next_check:
            return
        foreground = [run for run in self.store.queue.running()
                      if run.pool is PoolName.FOREGROUND]
        for run in foreground:
            if not runner_alive(run):
                self.settle(run)
        self.watching = bool(foreground)
        self.next_check = self.clock.monotonic() + CHECK_EVERY_S

    def settle(self, run: Run) -> None:
        log.warning("run %d: its `easyflow run` process (%s) ended without recording the end",
                    run.id, run.worker)
        stop_processes(self.store, run.id)
        decided = after_runner_death(settlement.facts(self.store, run))
        settlement.apply(self.store, run.id, decided, self.clock.now())


def stop_processes(store: Store, run_id: int) -> None:
    """What the run's step left running: its step dies with the terminal's process, but not
    what it started (whatever is still in its group, escapees with the run's mark)."""
    group = store.queue.step_group(run_id)
    if group is not None and is_still_ours(group):
        kill_group(group.pgid)
    # Not in the daemon's cgroups: the terminal's process ran it.
    MARKS_ONLY.stop([run_id], known_tokens(store))


def after_runner_death(run: settlement.RunFacts) -> Settlement:
    """The terminal's `easyflow run` died holding the run."""
    if not run.started:
        return Settlement(Transition.REQUEUE, note="its foreground runner ended before it started")
    error = "the `easyflow run` process running it in the foreground ended while it ran"
    return settlement.after_end(run, Outcome(RunState.FAILED, error=error), None)


def runner_alive(run: Run) -> bool:
    """Whether the process that claimed the run still runs: its pid is alive and started
    before the run was claimed (a later process with that pid is a stranger)."""
    pid = run.pid or _pid_of(run.worker)
    if pid is None:
        return True  # nothing to go by
    started = process_start(pid)
    if started is None:
        return False
    return run.claimed_at is None or started <= run.claimed_at + START_SLACK


def _pid_of(worker: str | None) -> int | None:
    prefix = "cli:"
    if worker is None or not worker.startswith(prefix) or not worker[len(prefix):].isdigit():
        return None
    return int(worker[len(prefix):])


def process_start(pid: int) -> datetime | None:
    """When a live process started, from /proc; None when there is no such process."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as stat:
            fields = stat.read().rsplit(b")", 1)[1].split()
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return None
    if fields[0] == b"Z":
        return None  # a zombie has ended
    ticks = int(fields[19])
    return _boot_time() + timedelta(seconds=ticks / os.sysconf("SC_CLK_TCK"))


def _boot_time() -> datetime:
    with open("/proc/stat", "rb") as stat:
        for line in stat:
            if line.startswith(b"btime "):
                return datetime.fromtimestamp(int(line.split()[1]), UTC)
    raise OSError("no btime in /proc/stat")
