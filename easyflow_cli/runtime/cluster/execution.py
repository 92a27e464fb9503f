"""What a Celery pool process of `easyflow worker` does with a dispatch: accept its runs by the
dispatch token, execute each with easyflow's own executor (process groups, time limits, CPU,
memory and energy), and write how each ended to PostgreSQL.

A message delivered twice, or after its dispatch expired, accepts nothing and is dropped. An
eco batch's runs are executed one after another. Each run is started (`RunQueue.start`, with
this process's pid) before its first step (a lone run in the statement that accepts it), so
that a death of this process counts it as begun: it is then settled as failed, never run a
second time (`heartbeat.py`). Its log goes to the database in chunks (`log_chunks.py`), masked
and capped as a local run's log file.

A cancel reaches this process as SIGUSR2 from the worker's main process, which saw it asked;
the run's cancellation check then asks the database whether the run it executes is the one, and
the executor stops its step as it does for a local cancel.
"""

from __future__ import annotations

import errno
import logging
import os
import signal
from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import datetime
from types import FrameType
from typing import BinaryIO, cast

import psycopg

from easyflow_cli.core.config import Config
from easyflow_cli.core.errors import NotFound
from easyflow_cli.core.model import Mode, Outcome, Run, RunState
from easyflow_cli.core.notify import NoticeBook
from easyflow_cli.core.planning import plan_retry
from easyflow_cli.core.spec import WorkflowSpec
from easyflow_cli.core.timeutil import utcnow
from easyflow_cli.runtime.cluster.engine import DispatchMessage
from easyflow_cli.runtime.cluster.log_chunks import ChunkedLog
from easyflow_cli.runtime.executor import execute_workflow, limits_for
from easyflow_cli.runtime.forecasts import ForecastFiles
from easyflow_cli.runtime.process_identity import group_of
from easyflow_cli.runtime.processes import become_subreaper
from easyflow_cli.runtime.rapl import EnergyMeter
from easyflow_cli.storage.cluster_queue import Accepted, StartAtAccept
from easyflow_cli.storage.pg_store import PgStore
from easyflow_cli.storage.pg_workers import PgWorkers
from easyflow_cli.storage.run_queue import RunEnd, RunStart

log = logging.getLogger("easyflow.worker")

CANCEL_SIGNAL = signal.SIGUSR2
CANCELLED_ERROR = "cancelled"
REMOVED_ERROR = "its workflow was removed before it started"


@dataclass(frozen=True)
class WorkerIdentity:
    """Who executes: the worker's unique name, its machine, its pool, and the token that marks
    every process of its runs (run_marker.py)."""

    name: str
    host: str
    token: str


class PoolProcess:
    """One Celery pool process's executor: its own database connection, opened after the fork."""

    def __init__(self, database_url: str, config: Config, identity: WorkerIdentity) -> None:
        self.database_url = database_url
        self.config = config
        self.identity = identity
        self._store: PgStore | None = None
        self.meter: EnergyMeter | None = None
        self.forecasts: ForecastFiles | None = None
        self.nudged = False  # SIGUSR2 came: a run of this worker was asked to stop

    def start(self) -> None:
        """In the pool process, after the fork (Celery's `worker_process_init`)."""
        signal.signal(CANCEL_SIGNAL, self._nudge)
        become_subreaper()
        self.meter = EnergyMeter()
        self.forecasts = ForecastFiles(self.config)

    def _nudge(self, signum: int, frame: FrameType | None) -> None:
        self.nudged = True

    def execute(self, kwargs: dict[str, object]) -> None:
        """The task: a dispatch's runs, accepted and executed; none if the message is stale."""
        message = DispatchMessage.from_kwargs(kwargs)
        now = utcnow()
        try:
            taken = self.workers().take(message.token, message.run_ids,
                                        worker=self.identity.name, host=self.identity.host,
                                        pid=os.getpid(), now=now,
                                        start=self._start_at_accept(message, now))
        except psycopg.Error:
            self.close()  # the next message connects again; this one's dispatch expires
            raise
        if not taken:
            log.info("dispatch %s of runs %s: taken already or expired; dropped",
                     message.token, list(message.run_ids))
            return
        try:
            for index, accepted in enumerate(taken):
                # A batch's later runs start after the earlier ones end: what their accept
                # read of their cancel and their workflow may be old by then.
                RunExecution(self, accepted.run, accepted if index == 0 else None).execute()
        except Exception:
            # Its runs would stay accepted by a process that lives on: exiting is what lets
            # the worker's main process see them abandoned and settle them.
            log.exception("runs %s: their progress cannot be recorded; this process exits and "
                          "its worker settles them", [accepted.run.id for accepted in taken])
            os._exit(70)

    def _start_at_accept(self, message: DispatchMessage, now: datetime) -> StartAtAccept | None:
        """A lone run starts as it is accepted (one round trip for both); a batch's runs start
        one after another."""
        if len(message.run_ids) != 1:
            return None
        window = self.config.tariff_window
        return StartAtAccept(window.contains(now) if window else None)

    @property
    def store(self) -> PgStore:
        if self._store is None:
            self._store = PgStore(self.database_url)
        return self._store

    def workers(self) -> PgWorkers:
        return PgWorkers(self.store)

    def close(self) -> None:
        if self._store is not None:
            self._store.close()
            self._store = None


class RunExecution:
    """One accepted run, from its start to its recorded end; `accepted`: its cancel and its
    workflow as its accept read them just now (else they are read again)."""

    def __init__(self, process: PoolProcess, run: Run, accepted: Accepted | None = None) -> None:
        self.process = process
        self.run = run
        self.accepted = accepted
        self.workers = process.workers()
        self.queue = self.workers.queue
        self.queue.pricing = process.forecasts  # its end is charged as a local run's is
        self.started: datetime | None = run.started_at  # when started as it was accepted
        self.cancel_seen = False
        self.log: ChunkedLog | None = None

    def execute(self) -> None:
        if self._cancel_asked():
            self._record(Outcome(RunState.CANCELLED, error=CANCELLED_ERROR), None)
            return
        spec = self._spec()
        if spec is None:
            self._record(Outcome(RunState.FAILED, error=REMOVED_ERROR), None)
            return
        self._record(self._outcome(spec), spec)

    def _cancel_asked(self) -> bool:
        if self.accepted is not None:
            return self.accepted.cancel_asked
        return self.workers.cancel_asked(self.run.id)

    def _spec(self) -> WorkflowSpec | None:
        if self.accepted is not None:
            return self.accepted.spec
        try:
            return self.process.store.get_workflow(self.run.workflow)
        except NotFound:
            return None

    def _outcome(self, spec: WorkflowSpec) -> Outcome:
        config, run = self.process.config, self.run
        if self.started is None:
            self.started = started = utcnow()
            window = config.tariff_window
            self.queue.start([RunStart(run.id, started, run.enqueued_at, os.getpid(), None,
                                       window.contains(started) if window else None)])
        with ChunkedLog(self._send_chunk) as self.log:
            outcome = execute_workflow(
                spec, limits_for(config, run.mode), cast(BinaryIO, self.log),
                cancelled=self._cancelled,
                meter=self.process.meter, run_id=run.id, token=self.process.identity.token,
                on_step_spawned=lambda pgid: self.queue.record_step(run.id, group_of(pgid)))
        if self.log.failure is None:
            return outcome
        note = f"run log incomplete: {self.log.failure}"
        return replace(outcome, error=f"{outcome.error}; {note}" if outcome.error else note)

    def _send_chunk(self, seq: int, data: bytes) -> None:
        try:
            self.workers.append_log(self.run.id, seq, data, now=utcnow())
        except psycopg.Error as exc:
            raise OSError(errno.EIO, f"cannot write the log to the database: {exc}") from None

    def _cancelled(self) -> bool:
        """Asked every half second while a step runs, also from a `call` step's timer signal:
        the database is asked only after a nudge, and never while the log is being sent."""
        busy = self.log is not None and self.log.busy
        if busy:
            return self.cancel_seen
        if self.process.nudged and not self.cancel_seen:
            self.process.nudged = False
            self.cancel_seen = self.workers.cancel_asked(self.run.id)
        if self.log is not None:
            self.log.flush()
        return self.cancel_seen

    def _record(self, outcome: Outcome, spec: WorkflowSpec | None) -> None:
        """The end, and the next attempt if one is due, in one transaction (as the daemon
        writes them): a crash in between cannot lose the retry."""
        run, at = self.run, utcnow()
        if spec is not None:  # its end's events go to the outbox, for the coordinator
            self.queue.notices = notice_book(self.process.config, [spec])
        with self.process.store.write():
            self.queue.finish([RunEnd(run.id, outcome, at, self.started or run.claimed_at,
                                      run.deadline)])
            ended = self.queue.get(run.id)
            planned = plan_retry(ended, spec, at) if spec is not None else None
            # A run whose cancel was asked is over for good, even if it failed first.
            if planned is not None and not self.workers.cancel_asked(run.id):
                self.queue.enqueue([planned])
        log.info("run %d (%s) %s", run.id, run.workflow, ended.state.value)


def notice_book(config: Config, specs: Iterable[WorkflowSpec]) -> NoticeBook:
    """The notification rules of these workflows, under this machine's defaults."""
    timeouts = {mode: config.pool(mode).timeout for mode in Mode}
    return NoticeBook.build(config.notify, timeouts,
                            ((spec.name, spec.notify, spec.retries) for spec in specs))
