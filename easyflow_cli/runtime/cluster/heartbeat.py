"""The heartbeat of `easyflow worker`: a thread of its main process, on a connection of its own,
that keeps the worker's lease, stops the runs whose cancel was asked, and settles the runs
whose pool process died.

Every `lease`/3 (and at once when a cancel is announced on CANCEL_CHANNEL) it:

1. stamps the worker's `heartbeat_at`: a worker silent for `lease` has lost its runs, which
   the coordinator settles (a killed main process takes its pool processes with it);
2. nudges (SIGUSR2) the pool process that holds each run whose cancel was asked, which stops
   the run as a local worker stops a cancelled one (execution.py);
3. settles the runs it holds whose pool process is gone (killed, or exited because it could
   not record them): Celery puts the message back (`task_reject_on_worker_lost`), but its
   redelivery finds the run accepted and drops it, so only this can. What the run's steps left
   is killed by its mark first; then a run never started goes back in line, a started one
   failed, retried if its workflow allows (`RunQueue.settle_abandoned`): never run twice.

A run is held by the pid that accepted it (`WorkerQueue.holders`); that process is alive while
it is a child of this one that is not a zombie.
"""

from __future__ import annotations

import contextlib
import logging
import os
import select
import threading
from collections import defaultdict

import psycopg

from easyflow_cli.core.config import Config
from easyflow_cli.core.errors import EasyflowError
from easyflow_cli.core.timeutil import utcnow
from easyflow_cli.runtime.cluster.execution import CANCEL_SIGNAL, WorkerIdentity, notice_book
from easyflow_cli.runtime.daemon.settlement import next_attempt
from easyflow_cli.runtime.forecasts import ForecastFiles
from easyflow_cli.runtime.run_marker import kill_marked
from easyflow_cli.storage.cluster_queue import CANCEL_CHANNEL, WorkerInfo
from easyflow_cli.storage.pg_store import PgStore
from easyflow_cli.storage.pg_workers import PgWorkers

log = logging.getLogger("easyflow.worker")

BEATS_PER_LEASE = 3
NOT_STARTED_NOTE = "its worker process died before it started"


class Heartbeat:
    """Registers the worker, beats in a thread, and marks the worker stopped at the end. Use as
    a context manager."""

    def __init__(self, database_url: str, info: WorkerInfo, identity: WorkerIdentity,
                 lease: float, config: Config) -> None:
        self.database_url = database_url
        self.config = config
        self.info = info
        self.identity = identity
        self.interval = lease / BEATS_PER_LEASE
        self.store: PgStore | None = None
        self.wake_read, self.wake_write = os.pipe()
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._loop, name="easyflow-heartbeat",
                                       daemon=True)

    def __enter__(self) -> Heartbeat:
        with PgStore(self.database_url) as store:
            PgWorkers(store).register(self.info)
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stopping.set()
        os.write(self.wake_write, b"x")
        self.thread.join()
        os.close(self.wake_read)
        os.close(self.wake_write)
        try:
            self.beat()  # what pool processes killed by a cold shutdown held is settled now
            PgWorkers(self._open()).stop(self.info.name, now=utcnow())
        except (psycopg.Error, EasyflowError) as exc:
            log.warning("worker %s: cannot record its stop: %s", self.info.name, exc)
        finally:
            self.close()

    def _loop(self) -> None:
        while not self.stopping.is_set():
            try:
                self.beat()
            except (psycopg.Error, EasyflowError) as exc:
                log.warning("worker %s: heartbeat failed: %s", self.info.name, exc)
                self.close()
            self._wait()
        self.close()

    def _wait(self) -> None:
        """Until the next beat is due, a cancel is announced, or the worker stops."""
        waited = [self.wake_read] + ([self.store.conn.fileno()] if self.store else [])
        ready, _, _ = select.select(waited, [], [], self.interval)
        if self.store is not None and self.store.conn.fileno() in ready:
            try:
                list(self.store.conn.notifies(timeout=0))
            except psycopg.Error:
                self.close()

    def beat(self) -> None:
        store = self._open()
        workers = PgWorkers(store)
        cancels = workers.heartbeat(self.info.name, now=utcnow())
        holders = workers.holders(self.info.name)
        alive = {run_id: pid for run_id, pid in holders.items()
                 if pid is not None and is_live_child(pid)}
        for run_id in cancels:
            if run_id in alive:
                _nudge(alive[run_id])
        lost = {run_id: pid for run_id, pid in holders.items() if run_id not in alive}
        if lost:
            self._settle(store, lost)

    def _settle(self, store: PgStore, lost: dict[int, int | None]) -> None:
        kill_marked(lost, [self.identity.token])
        # Their ends are charged and their events written as a pool process would have.
        store.queue.notices = notice_book(self.config, store.all_workflows())
        store.queue.pricing = ForecastFiles(self.config)
        by_pid: dict[int | None, list[int]] = defaultdict(list)
        for run_id, pid in lost.items():
            by_pid[pid].append(run_id)
        now = utcnow()
        for pid, run_ids in by_pid.items():
            error = f"worker process {pid} on {self.identity.host} died while running it"
            failed = store.queue.settle_abandoned(
                sorted(run_ids), now=now, note=NOT_STARTED_NOTE, error=error,
                next_attempt=next_attempt(store, now))
            log.warning("runs %s: their worker process %s died; settled (failed: %s)",
                        sorted(run_ids), pid, [run.id for run in failed])

    def _open(self) -> PgStore:
        if self.store is None:
            self.store = PgStore(self.database_url)
            self.store.conn.execute(f"LISTEN {CANCEL_CHANNEL}")
        return self.store

    def close(self) -> None:
        if self.store is not None:
            self.store.close()
            self.store = None


def is_live_child(pid: int) -> bool:
    """Is `pid` a child of this process that has not exited (a zombie has)?"""
    try:
        with open(f"/proc/{pid}/stat", "rb") as stat:
            fields = stat.read().rsplit(b")", 1)[1].split()
    except (OSError, IndexError):
        return False
    state, parent = fields[0], int(fields[1])
    return parent == os.getpid() and state not in (b"Z", b"X")


def _nudge(pid: int) -> None:
    # One that ended meanwhile is gone: the next beat settles what it held.
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, CANCEL_SIGNAL)

