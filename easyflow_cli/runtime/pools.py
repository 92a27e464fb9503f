"""Three pools of worker processes, one per mode, each with its own size and priority.

A pool never runs more of its mode's runs at once than it has workers. Workers are started
ahead of time (warm), so a run starts without waiting for a process to boot; a worker that dies
is noticed through its pipe and replaced.

While a pool's runs are short, each worker is handed several at once (it still runs them one
after another): a hand-over then costs the daemon one message and one claim for many runs, and
the worker never waits for the daemon between two of them. Long runs go one at a time, so a run
never waits behind another while a worker is free; a worker holding runs behind one that turned
out long gives them back (`release`).
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from easyflow_cli.core.config import PoolConfig
from easyflow_cli.core.model import ClaimedRun, Mode, StopReason
from easyflow_cli.runtime.protocol import (
    Order,
    ProtocolError,
    ReleaseOrder,
    Report,
    RetireOrder,
    RunOrder,
    decode_reports,
    encode,
)
from easyflow_cli.runtime.run_marker import kill_session

log = logging.getLogger("easyflow.daemon")

# Runs a worker may hold at once while its pool's recent runs took under SHORT_RUN_S each.
PREFETCH_DEPTH = 32
SHORT_RUN_S = 0.05
# How much the latest run counts in a pool's typical duration (an exponential average).
DURATION_WEIGHT = 0.2
# A run that has been going this long is no longer short: runs held behind it are given back
# if another worker of the pool is free.
RELEASE_AFTER_S = 0.2
# A worker is booting (`starting`), free (`idle`), holding runs (`busy`), or leaving the pool
# after a reload made it smaller (`retiring`).
WORKER_STATES = ("starting", "idle", "busy", "retiring")


@dataclass
class Assignment:
    """A run a worker holds: handed over (`started` False) or executing (`started` True)."""

    run_id: int
    run: ClaimedRun
    started: bool = False
    started_at: datetime | None = None  # as its worker reported
    started_mono: float | None = None  # when that report arrived (monotonic)
    pgid: int | None = None
    stop_reason: StopReason | None = None
    time_allowed: float | None = None  # seconds from its start before its worker is killed


class PoolWorker:
    """One worker as its pool sees it: the runs it holds and what it was asked to do.

    How it talks is left to subclasses: `WorkerProcess` is a real worker process; tests pass
    fakes that speak through a pipe of their own. Reports arrive on `stdout_fd`."""

    def __init__(self, pool: Pool, number: int, stdout_fd: int) -> None:
        self.pool = pool
        self.name = f"{pool.mode.value}-{number}"
        self.stdout_fd = stdout_fd
        os.set_blocking(self.stdout_fd, False)
        self.buffer = b""
        self.assignments: dict[int, Assignment] = {}
        self.retiring = False
        self.releasing = False  # a release was asked for and not answered yet
        self.ready = False  # it has booted and said so: a run handed to it starts at once

    @property
    def pid(self) -> int:
        raise NotImplementedError

    def send_line(self, line: bytes) -> bool:
        """Write one encoded order; False if the worker can no longer be reached."""
        raise NotImplementedError

    def kill(self) -> None:
        raise NotImplementedError

    def close(self) -> int | None:
        """After its end of file: close what is left of its pipes; its exit status."""
        raise NotImplementedError

    def end_session(self) -> None:
        """After its end of file, before `close`: kill what is left in its session (the steps
        it spawned, one caught between its spawn and its exec too, before it carries a mark)."""

    @property
    def idle(self) -> bool:
        return not self.assignments and not self.retiring

    @property
    def state(self) -> str:
        """One of `WORKER_STATES`."""
        if self.retiring:
            return "retiring"
        if self.assignments:
            return "busy"
        return "idle" if self.ready else "starting"

    def send(self, order: Order) -> bool:
        return self.send_line(encode(order))

    def assign(self, runs: list[ClaimedRun], order: RunOrder) -> bool:
        """Hand over `runs` with the `run` order that describes them."""
        for run in runs:
            self.assignments[run.id] = Assignment(run.id, run)
        return self.send(order)

    def long_from(self) -> float | None:
        """When its current run counts as long (monotonic): RELEASE_AFTER_S after it started."""
        started = [a.started_mono for a in self.assignments.values() if a.started_mono is not None]
        return min(started) + RELEASE_AFTER_S if started else None

    def running_long(self, now_mono: float) -> bool:
        long_from = self.long_from()
        return long_from is not None and now_mono >= long_from

    def release_due_at(self) -> float | None:
        """When the runs it holds behind its current one should be given back, if it holds any."""
        return None if len(self.assignments) < 2 or self.releasing else self.long_from()

    def waiting_behind_long_run(self, now_mono: float) -> bool:
        """It holds runs not started behind one that has been running a long time."""
        due = self.release_due_at()
        return due is not None and now_mono >= due

    def release(self) -> None:
        """Ask for the runs it has not started back; it answers with a "released" report."""
        self.releasing = True
        self.send(ReleaseOrder())

    def read_reports(self) -> tuple[list[Report], bool]:
        """Reports the worker has written so far, and whether its pipe reached end of file.

        A report we cannot read means the worker cannot be trusted with its runs: it is
        killed, and its runs are settled as those of a worker that died."""
        eof = False
        try:
            while True:
                data = os.read(self.stdout_fd, 65536)
                if not data:
                    eof = True
                    break
                self.buffer += data
        except BlockingIOError:
            pass
        *lines, self.buffer = self.buffer.split(b"\n")
        try:
            return decode_reports([line for line in lines if line.strip()]), eof
        except ProtocolError as exc:
            log.error("worker %s sent a report we cannot read (%s); killing it", self.name, exc)
            self.kill()
            return [], eof

    def retire(self) -> None:
        """Finish what it holds, then exit.

        A message rather than closing stdin: the pipe must stay open so a run it is still
        executing can be cancelled (a drain past its grace does exactly that).
        """
        self.retiring = True
        if not self.send(RetireOrder()):
            self.close_orders()

    def close_orders(self) -> None:
        """Close its order pipe: end of file means the same as retire."""
        raise NotImplementedError


class WorkerProcess(PoolWorker):
    """A worker process (runtime/worker.py) with its two pipes."""

    def __init__(self, pool: Pool, number: int) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "easyflow_cli.runtime.worker", "--nice", str(pool.config.nice),
             "--parent", str(os.getpid())],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, close_fds=True,
            env={**os.environ, **pool.worker_env},
            # Its own session, which the steps it spawns stay in: one dead worker's are then
            # told from another's, even before their exec (end_session).
            start_new_session=True,
        )
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.stdin = self.proc.stdin
        self.stdout = self.proc.stdout
        super().__init__(pool, number, self.stdout.fileno())

    @property
    def pid(self) -> int:
        return self.proc.pid

    def send_line(self, line: bytes) -> bool:
        try:
            self.stdin.write(line)
            self.stdin.flush()
            return True
        except (OSError, ValueError):  # ValueError: the pipe was already closed
            return False

    def kill(self) -> None:
        self.proc.kill()

    def close_orders(self) -> None:
        with contextlib.suppress(OSError, ValueError):
            self.stdin.close()

    def close(self) -> int | None:
        self.stdout.close()
        self.close_orders()
        return self.proc.wait()

    def end_session(self) -> None:
        # Its end of file means it is exiting (or lost its pipe: then it is no use alive). Once
        # it is dead and not yet reaped, its pid cannot name another process, nor its session.
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.proc.pid, signal.SIGKILL)  # not Popen.kill: it would reap it first
        os.waitid(os.P_PID, self.proc.pid, os.WEXITED | os.WNOWAIT)
        kill_session(self.proc.pid)


WorkerFactory = Callable[["Pool", int], PoolWorker]


@dataclass
class Pool:
    mode: Mode
    config: PoolConfig
    workers: list[PoolWorker] = field(default_factory=list)
    started: int = 0
    typical_run_s: float | None = None  # recent runs' duration, an exponential average
    spawn: WorkerFactory = WorkerProcess  # tests pass fakes
    # What its workers' runs are marked and contained by (run_marker.py, run_cgroup.py).
    worker_env: dict[str, str] = field(default_factory=dict)

    def note_duration(self, seconds: float) -> None:
        if self.typical_run_s is None:
            self.typical_run_s = seconds
        else:
            self.typical_run_s += DURATION_WEIGHT * (seconds - self.typical_run_s)

    @property
    def prefetch_depth(self) -> int:
        """How many runs each worker may hold: several only while the pool's runs are short."""
        short = self.typical_run_s is not None and self.typical_run_s < SHORT_RUN_S
        return PREFETCH_DEPTH if short else 1

    def rooms(self, now_mono: float) -> list[tuple[PoolWorker, int]]:
        """Workers to hand runs to now, and how many each may take.

        A worker is topped up once it is down to half its depth, so that one claim and one
        message carry many runs instead of one each; never while its run is a long one."""
        depth = self.prefetch_depth
        return [(w, depth - len(w.assignments)) for w in self.workers
                if not w.retiring and not w.releasing and len(w.assignments) <= depth // 2
                and not (w.assignments and w.running_long(now_mono))]

    def fill(self) -> list[PoolWorker]:
        """Start workers until the pool has its configured size; returns the new ones."""
        new = []
        # Retiring workers still count: they may be finishing a run, and the pool's size is a
        # promise about how many of its runs execute at once.
        while len(self.workers) < self.config.workers:
            self.started += 1
            worker = self.spawn(self, self.started)
            self.workers.append(worker)
            new.append(worker)
        return new

    def shrink(self) -> None:
        """After a reload made the pool smaller: retire idle workers first, then busy ones."""
        active = [w for w in self.workers if not w.retiring]
        excess = len(active) - self.config.workers
        for worker in sorted(active, key=lambda w: not w.idle)[:max(0, excess)]:
            worker.retire()

    def idle_workers(self) -> list[PoolWorker]:
        return [w for w in self.workers if w.idle]

    @property
    def ready(self) -> int:
        return sum(1 for w in self.workers if w.ready)

    @property
    def busy(self) -> int:
        return sum(1 for w in self.workers if w.assignments)

    def worker_states(self) -> dict[str, int]:
        """How many workers are in each of `WORKER_STATES` (every state, zeros too). Safe to
        call from another thread: it reads a copy of the list."""
        states = dict.fromkeys(WORKER_STATES, 0)
        for worker in list(self.workers):
            states[worker.state] += 1
        return states

    def remove(self, worker: PoolWorker) -> None:
        self.workers.remove(worker)
