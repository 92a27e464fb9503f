"""The long-running daemon: one event loop over the socket, the worker pipes and the signals.

It sleeps until something is due (a schedule fire, a promotion, a deferred run becoming ready,
the watchdog) or something arrives (a submission's wake-up on the socket, a worker's report, a
signal). Each wake-up runs the same short sequence: fire due schedules, promote runs near their
deadline, hand ready runs to idle workers.

SQLite is the single source of truth; this object holds only what is live: the pools, the
socket, and what each worker is doing.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import logging
import os
import selectors
import signal
import socket
import sqlite3
import struct
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from easyflow_cli.core.config import Config, load_config
from easyflow_cli.core.errors import EasyflowError, NotFound, shown
from easyflow_cli.core.model import ClaimedRun, Mode, Outcome, PoolName, Run, RunState, StopReason
from easyflow_cli.core.paths import ensure_state_dir, run_log_path, socket_path
from easyflow_cli.core.planning import QueuePolicy, plan_retry
from easyflow_cli.core.timeutil import to_iso, utcnow
from easyflow_cli.runtime.executor import limits_for
from easyflow_cli.runtime.pools import Assignment, Pool, WorkerProcess
from easyflow_cli.runtime.recording import Batch, EndedRun
from easyflow_cli.runtime.sdnotify import Notifier
from easyflow_cli.scheduling.scheduler import ScheduleBook, prime_schedules
from easyflow_cli.storage.run_queue import Hand, RunEnd, RunStart, cancel_run, replan_off_peak
from easyflow_cli.storage.store import CHECKPOINT_WHEN_QUIET_S, Store

log = logging.getLogger("easyflow.daemon")

SHUTDOWN_NOTE = "interrupted by daemon shutdown"
# Requests are a few dozen bytes; a client that sends more without a newline is not a client.
MAX_REQUEST_BYTES = 64 * 1024
# While the database cannot be written: first retry after this, doubling up to the maximum.
DB_RETRY_FIRST = 0.5
DB_RETRY_MAX = 8.0
DB_STILL_FAILING_EVERY = 60.0
# epoll takes a sleep of at most 2**31 - 1 ms (under 25 days); a run due later (a deadline a
# year away puts its promotion there) is found again by sleeping this long at a time.
MAX_SLEEP_S = 24 * 3600.0


class DaemonError(EasyflowError):
    pass



class Daemon:
    """The daemon's main object: all live state lives here, nowhere else."""

    def __init__(self, home: Path, config_path: str | None = None) -> None:
        self.home = ensure_state_dir(home)
        self.logs_dir = str(run_log_path(self.home, 0).parent)
        self.config_path = config_path
        self.config: Config = load_config(config_path)
        self.notifier = Notifier.from_env()
        self.selector = selectors.DefaultSelector()
        self.pools = {mode: Pool(mode, self.config.pool(mode)) for mode in Mode}
        self.store: Store | None = None
        self.listener: socket.socket | None = None
        self.lock_fd: int | None = None
        self.started_at = utcnow()
        self.stop_requested = False
        self.reload_requested = False
        self.draining_until: float | None = None
        self.drain_phase = "none"  # none → grace → stopping → killing
        self.last_status = ""
        # This wake-up's state changes, written in one transaction at its end.
        self.batch = Batch()
        # Batches whose write failed (read-only, disk full...), replayed in order once the
        # database can be written again; meanwhile nothing new is claimed or started.
        self.backlog: list[Batch] = []
        self.db_retry_at: float | None = None
        self.db_retry_delay = DB_RETRY_FIRST
        self.db_failing_since: float | None = None
        self.db_last_complaint = 0.0
        # True while the last wake-up brought only workers' "started"/"step" reports.
        self.progress_only = False
        self.sleep_deadline: float | None = None  # monotonic; when something is next due
        self.wal_dirty = False  # something happened since the last checkpoint

    # ------------------------------------------------------------------ lifecycle

    def run(self) -> int:
        self._acquire_lock()
        self.store = Store.open(self.home)
        self.schedules = ScheduleBook(self.store, self._policy(), self.started_at)
        self._install_signals()
        self._recover_abandoned_runs()
        prime_schedules(self.store, utcnow())
        self._open_socket()
        for pool in self.pools.values():
            self._watch_workers(pool.fill())
        log.info("daemon %d serving %s (config: %s)", os.getpid(), self.home, self.config.source)
        self.notifier.ready(self._status_line())
        try:
            while not self._finished_draining():
                self._tick()
        finally:
            self._shutdown()
        return 0

    def _tick(self) -> None:
        if self.stop_requested and self.draining_until is None:
            self._begin_drain()
        timeout = self._time_left() if self._may_skip_scheduling() else self._full_tick()
        events = self._wait(timeout)
        self.progress_only = bool(events)
        for key, _ in events:
            key.data(key.fileobj)
        self._write_recorded()
        if self.notifier.watchdog_interval:
            self.notifier.watchdog()

    def _wait(self, timeout: float | None) -> list:
        """Sleep until something arrives or `timeout`; checkpoint if it stays quiet a while."""
        if self.wal_dirty and (timeout is None or timeout > CHECKPOINT_WHEN_QUIET_S):
            events = self.selector.select(CHECKPOINT_WHEN_QUIET_S)
            if events:
                return events
            self._checkpoint()
            timeout = self._time_left() if timeout is not None else None
        events = self.selector.select(timeout)
        self.wal_dirty = self.wal_dirty or bool(events)
        return events

    def _checkpoint(self) -> None:
        self.wal_dirty = False
        try:
            self.store.checkpoint()
        except sqlite3.OperationalError as exc:  # busy, read-only, disk full: next quiet time
            log.debug("checkpoint skipped: %s", exc)

    def _may_skip_scheduling(self) -> bool:
        # Only "started"/"step" reports came in: nothing became due or free, so skip the
        # queries. The reporting worker is usually waiting for us meanwhile: its pipe write
        # woke this loop on its own CPU, and its step starts once we sleep again.
        return (self.progress_only and self.draining_until is None and self.db_retry_at is None
                and not self.reload_requested)

    def _full_tick(self) -> float | None:
        """Retry the database, then reload, fire, promote, dispatch; how long to sleep then."""
        if self.db_retry_at is not None and time.monotonic() >= self.db_retry_at:
            self._retry_database()
        if self.db_retry_at is None:
            self._do_due_work()
        if self.draining_until is not None and time.monotonic() >= self.draining_until:
            self._next_drain_phase()
        self._update_status()
        timeout = self._sleep_seconds(utcnow())
        self.sleep_deadline = None if timeout is None else time.monotonic() + timeout
        return timeout

    def _time_left(self) -> float | None:
        if self.sleep_deadline is None:
            return None
        return max(0.0, self.sleep_deadline - time.monotonic())

    def _do_due_work(self) -> None:
        """Reload, fire, promote, dispatch: each a short transaction; a failed write backs off."""
        try:
            if self.reload_requested:
                self._reload()
            if self.draining_until is None:
                now = utcnow()
                self._fire_schedules(now)
                self._promote(now)
                self._dispatch(now)
        except sqlite3.OperationalError as exc:
            self._database_failed(exc)
        self._write_recorded()

    def _dispatch_now(self) -> None:
        """Hand woken runs over before answering the wake-up: the client, woken by the answer,
        would otherwise compete with them for the CPU."""
        if self.draining_until is not None or self.db_retry_at is not None:
            return
        try:
            self._dispatch(utcnow())
        except sqlite3.OperationalError as exc:
            self._database_failed(exc)
        self._write_recorded()

    def _sleep_seconds(self, now: datetime) -> float | None:
        """Until the next thing that is due; None (sleep until woken) when nothing is."""
        if self.db_retry_at is not None:
            waits = [self.db_retry_at - time.monotonic()]
        else:
            due = [self.schedules.next_due(), self.store.queue.next_promotion_at()]
            due += [self.store.queue.next_ready_at(mode, now) for mode in Mode
                    if self.pools[mode].idle_workers()]
            waits = [(moment - now).total_seconds() for moment in due if moment is not None]
            release = self._next_release_in()
            if release is not None:
                waits.append(release)
        if self.draining_until is not None:
            waits.append(self.draining_until - time.monotonic())
            waits.append(0.5)  # worker exits are noticed through their pipes; this bounds it
        if self.notifier.watchdog_interval:
            waits.append(self.notifier.watchdog_interval)
        return min(max(0.0, min(waits)), MAX_SLEEP_S) if waits else None

    # ------------------------------------------------------------------ lock, socket, signals

    def _acquire_lock(self) -> None:
        path = self.home / "daemon.lock"
        self.lock_fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(self.lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(self.lock_fd, 32, 0).decode().strip() or "?"
            raise DaemonError(f"another daemon is already running on {self.home} "
                              f"(pid {holder})") from None
        os.ftruncate(self.lock_fd, 0)
        os.pwrite(self.lock_fd, f"{os.getpid()}\n".encode(), 0)

    def _open_socket(self) -> None:
        path = socket_path(self.home)
        if path.exists() or path.is_symlink():
            path.unlink()  # stale: we hold the lock, so no live daemon owns it
        self.listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        old_umask = os.umask(0o177)
        try:
            self.listener.bind(str(path))
        finally:
            os.umask(old_umask)
        os.chmod(path, 0o600)
        self.listener.listen(64)
        self.listener.setblocking(False)
        self.selector.register(self.listener, selectors.EVENT_READ, self._accept)

    def _install_signals(self) -> None:
        self.signal_r, signal_w = os.pipe()
        os.set_blocking(self.signal_r, False)
        os.set_blocking(signal_w, False)
        signal.set_wakeup_fd(signal_w)
        # Handlers only set flags; the loop acts on them (the wake-up fd ends its sleep).
        signal.signal(signal.SIGTERM, self._on_stop_signal)
        signal.signal(signal.SIGINT, self._on_stop_signal)
        signal.signal(signal.SIGHUP, self._on_reload_signal)
        self.selector.register(self.signal_r, selectors.EVENT_READ, self._drain_signal_pipe)

    def _on_stop_signal(self, signum, frame) -> None:
        self.stop_requested = True

    def _on_reload_signal(self, signum, frame) -> None:
        self.reload_requested = True

    def _drain_signal_pipe(self, fd) -> None:
        self.progress_only = False
        try:
            while os.read(self.signal_r, 512):
                pass
        except BlockingIOError:
            pass

    # ------------------------------------------------------------------ requests

    def _accept(self, listener) -> None:
        self.progress_only = False
        try:
            conn, _ = listener.accept()
        except BlockingIOError:
            return
        if not _peer_allowed(conn):
            log.warning("refused a connection from another user")
            conn.close()
            return
        conn.setblocking(False)
        reader = _RequestReader(self)
        self.selector.register(conn, selectors.EVENT_READ, reader.on_readable)
        # A client sends its request right after connecting: answering it now saves a turn of
        # the loop (and its scheduling queries) on a real-time run's way to its worker.
        reader.on_readable(conn)

    def handle_request(self, request: Any) -> dict[str, Any]:
        if not isinstance(request, dict):
            return {"ok": False, "error": "a request is one JSON object"}
        op = request.get("op")
        if op == "wake":
            # The CLI planned these runs with the config it found, and the daemon may run with
            # one the CLI cannot see (systemd's `--config`, its own $EASYFLOW_CONFIG): the
            # off-peak window that decides when eco work starts is ours, so that one rule of the
            # plan is applied again here. Asking the daemon for its window before planning
            # would add a round trip to every `run --now`.
            submitted = [int(i) for i in request.get("runs", [])]
            if submitted:
                replan_off_peak(self.store.queue, self._policy(), utcnow(), submitted)
            self._dispatch_now()
            return {"ok": True}
        if op == "reload":
            self.reload_requested = True
            return {"ok": True}
        if op == "status":
            return self.status()
        if op == "cancel":
            run_id = request.get("id")
            if isinstance(run_id, bool) or not isinstance(run_id, int):
                return {"ok": False, "error": "cancel needs a run id"}
            return self._cancel(run_id)
        return {"ok": False, "error": f"unknown op {shown(op)}"}

    def status(self) -> dict[str, Any]:
        return {
            "pid": os.getpid(), "since": to_iso(self.started_at),
            "state": "draining" if self.draining_until is not None else "running",
            "home": str(self.home), "config": self.config.source,
            "pools": {mode.value: {"busy": pool.busy, "size": pool.config.workers,
                                   "ready": pool.ready,
                                   "workers": [w.pid for w in pool.workers]}
                      for mode, pool in self.pools.items()},
            "queue": self.store.queue.depths(),
            "next_fires": self.store.upcoming_schedules(5),
        }

    def _cancel(self, run_id: int) -> dict[str, Any]:
        for worker in self._all_workers():
            assignment = worker.assignments.get(run_id)
            if assignment is not None:
                assignment.stop_reason = StopReason.CANCELLED
                worker.send({"op": "cancel", "id": run_id})
                return {"ok": True, "state": "stopping"}
        try:
            run = cancel_run(self.store.queue, run_id, now=utcnow())
            return {"ok": True, "state": run.state.value}
        except EasyflowError as exc:
            return {"ok": False, "error": str(exc)}
        except sqlite3.OperationalError as exc:
            return {"ok": False, "error": f"database: {exc}"}

    # ------------------------------------------------------------------ the work

    def _policy(self) -> QueuePolicy:
        return QueuePolicy(self.config.promote_within, self.config.off_peak)

    def _fire_schedules(self, now: datetime) -> None:
        for fire in self.schedules.fire_due(now):
            if fire.run_id is None:
                log.info("schedule %d (%s) fired; coalesced with a run still waiting",
                         fire.schedule_id, fire.workflow)
            else:
                log.info("schedule %d (%s) fired: run %d (%s)", fire.schedule_id, fire.workflow,
                         fire.run_id, fire.trigger.value)

    def _promote(self, now: datetime) -> None:
        for run_id in self.store.queue.promote(now):
            log.info("run %d promoted to real-time: its deadline is near", run_id)

    def _dispatch(self, now: datetime) -> None:
        """Hand ready runs to workers: real-time first, then balanced, then eco."""
        for mode in Mode:
            if mode is Mode.ECO:
                self._dispatch_batches(self.pools[mode], now)
            else:
                self._dispatch_runs(self.pools[mode], now)

    def _dispatch_runs(self, pool: Pool, now: datetime) -> None:
        """Top up the pool's workers (one claim for all of them); give back runs stuck behind
        a long one if a worker is left with nothing."""
        now_mono = time.monotonic()
        rooms = pool.rooms(now_mono)
        if rooms:
            hands = self.store.queue.claim(pool.mode, now=now, pool=PoolName.of(pool.mode),
                                           hands=[Hand(w.name, room) for w, room in rooms])
            for (worker, _), runs in zip(rooms, hands, strict=True):
                if runs:
                    self._hand_over(worker, runs)
        if pool.idle_workers():
            for worker in pool.workers:
                if worker.waiting_behind_long_run(now_mono):
                    worker.release()

    def _dispatch_batches(self, pool: Pool, now: datetime) -> None:
        """Eco: each idle worker claims up to `batch_size` runs at once, as one batch."""
        for worker in pool.idle_workers():
            limit = pool.config.batch_size
            batch_id = uuid.uuid4().hex[:12] if limit > 1 else None
            runs = self.store.queue.claim(pool.mode, now=now, pool=PoolName.of(pool.mode),
                                          hands=[Hand(worker.name, limit, batch_id)])[0]
            if not runs:
                break
            self._hand_over(worker, runs)

    def _next_release_in(self) -> float | None:
        """Seconds until a run held behind a long one should be given back to a free worker."""
        moments = [due for mode, pool in self.pools.items()
                   if mode is not Mode.ECO and pool.idle_workers()
                   for due in map(WorkerProcess.release_due_at, pool.workers) if due is not None]
        return max(0.0, min(moments) - time.monotonic()) if moments else None

    def _hand_over(self, worker: WorkerProcess, runs: list[ClaimedRun]) -> None:
        specs: dict[str, dict[str, Any]] = {}
        kept = []
        for run in runs:
            name = run.workflow
            try:
                if name not in specs:
                    spec, source_file = self.store.workflow_spec_dict(name)
                    specs[name] = {"spec": spec, "source_file": source_file}
            except NotFound:
                outcome = Outcome(RunState.FAILED,
                                  error="workflow was removed before the run started")
                self._record(lambda r=run, o=outcome: self.store.queue.finish(
                    [RunEnd(r.id, o, utcnow(), r.claimed_at, r.deadline)]))
                continue
            kept.append(run)
        if not kept:
            return
        message = {"op": "run", "limits": asdict(limits_for(self.config, kept[0].mode)),
                   "specs": specs,
                   "runs": [{"id": run.id, "workflow": run.workflow,
                             "log_path": self._log_path(run.id)} for run in kept]}
        if not worker.assign(kept, message):
            log.warning("worker %s did not take its orders; it will be replaced", worker.name)

    def _log_path(self, run_id: int) -> str:
        # The same path as run_log_path, without building a Path twice per run.
        return f"{self.logs_dir}{os.sep}{run_id}.log"

    # ------------------------------------------------------------------ database trouble

    def _record(self, change: Callable[[], None],
                then: Callable[[], None] | None = None) -> None:
        """Write a change with the others of this wake-up; `then` runs once it is committed."""
        self.batch.changes.append(change)
        if then is not None:
            self.batch.after_commit.append(then)

    def _write_recorded(self) -> None:
        """This wake-up's changes in one transaction, or kept, in order, until they can be."""
        if not self.batch:
            return
        batch, self.batch = self.batch, Batch()
        if self.backlog:
            self.backlog.append(batch)
            return
        try:
            batch.apply(self.store)
        except sqlite3.OperationalError as exc:
            self.backlog.append(batch)
            self._database_failed(exc)

    def _database_failed(self, exc: sqlite3.OperationalError) -> None:
        now = time.monotonic()
        if self.db_failing_since is None:
            self.db_failing_since = self.db_last_complaint = now
            log.error("cannot write the database %s: %s; no new runs start until it can be "
                      "written again (retrying with back-off)", self.store.path, exc)
        elif now - self.db_last_complaint >= DB_STILL_FAILING_EVERY:
            self.db_last_complaint = now
            log.error("still cannot write the database (for %.0fs): %s; %d changes waiting",
                      now - self.db_failing_since, exc, len(self.backlog))
        self.db_retry_at = now + self.db_retry_delay
        self.db_retry_delay = min(self.db_retry_delay * 2, DB_RETRY_MAX)

    def _retry_database(self) -> None:
        """Replay the waiting changes in order; healthy again once all of them are written."""
        while self.backlog:
            try:
                self.backlog[0].apply(self.store)
            except sqlite3.OperationalError as exc:
                self._database_failed(exc)
                return
            self.backlog.pop(0)
        if self.db_failing_since is not None:
            log.info("the database can be written again (after %.1fs); resuming",
                     time.monotonic() - self.db_failing_since)
        self.db_retry_at = self.db_failing_since = None
        self.db_retry_delay = DB_RETRY_FIRST

    # ------------------------------------------------------------------ worker reports

    def _watch_workers(self, workers: list[WorkerProcess]) -> None:
        for worker in workers:
            self.selector.register(worker.stdout_fd, selectors.EVENT_READ,
                                   lambda fd, w=worker: self._on_worker_output(w))

    def _all_workers(self) -> list[WorkerProcess]:
        return [w for pool in self.pools.values() for w in pool.workers]

    def _on_worker_output(self, worker: WorkerProcess) -> None:
        events, eof = worker.read_events()
        if eof or any(event["ev"] not in ("started", "step") for event in events):
            self.progress_only = False
        elif len(worker.assignments) > 1 and worker.pool.idle_workers():
            self.progress_only = False  # a run started with others behind it: time a release
        for event in events:
            self._on_worker_event(worker, event)
        if eof:
            self._on_worker_exit(worker)

    def _on_worker_event(self, worker: WorkerProcess, event: dict[str, Any]) -> None:
        kind = event["ev"]
        if kind == "ready":
            worker.ready = True
            return
        if kind == "released":
            self._on_released(worker, event["ids"])
            return
        assignment = worker.assignments.get(event["id"])
        if assignment is None:
            return
        if kind == "step":
            assignment.pgid = event["pgid"]
            # Only once the process group is committed may the worker let the step run.
            self._record(lambda: self.store.queue.record_step(event["id"], event["pgid"]),
                         then=lambda: worker.send({"op": "ack", "id": event["id"],
                                                   "pgid": event["pgid"]}))
            return
        if kind in ("started", "ran"):  # "ran": a short run's start and end in one report
            self._on_started(worker, assignment, event.get("started_at", event["at"]))
        if kind in ("finished", "ran"):
            self._on_finished(worker, assignment, event["at"], event["outcome"])

    def _on_started(self, worker: WorkerProcess, assignment: Assignment, at: float) -> None:
        assignment.started = True
        assignment.started_at = moment = _moment(at)
        assignment.started_mono = time.monotonic()
        window = self.config.tariff_window
        self.batch.starts.append(RunStart(
            assignment.run_id, moment, assignment.run.enqueued_at, worker.pid,
            self._log_path(assignment.run_id), window.contains(moment) if window else None))

    def _on_finished(self, worker: WorkerProcess, assignment: Assignment, at: float,
                     reported: dict[str, Any]) -> None:
        del worker.assignments[assignment.run_id]
        if assignment.started_mono is not None:
            worker.pool.note_duration(time.monotonic() - assignment.started_mono)
        outcome = Outcome(**{**reported, "state": RunState(reported["state"])})
        moment = _moment(at)
        if assignment.stop_reason is not StopReason.SHUTDOWN and outcome.state in PLAIN_ENDS:
            self.batch.ends.append(_ended_run(assignment, outcome, moment))
        else:
            self._record(lambda: self._record_end(assignment.run_id, outcome, moment,
                                                  assignment.stop_reason))

    def _on_released(self, worker: WorkerProcess, run_ids: list[int]) -> None:
        """Runs a worker gave back unstarted: into the queue again, first in line as before."""
        worker.releasing = False
        for run_id in run_ids:
            worker.assignments.pop(run_id, None)
        note = SHUTDOWN_NOTE + "; re-queued" if self.draining_until is not None else None
        if run_ids:
            log.info("worker %s gave back %d runs it had not started", worker.name, len(run_ids))
            self._record(lambda: self.store.queue.requeue(run_ids, note))

    def _record_end(self, run_id: int, outcome: Outcome, moment: datetime,
                    stop_reason: StopReason | None) -> None:
        queue = self.store.queue
        if stop_reason is StopReason.SHUTDOWN and outcome.state is RunState.CANCELLED:
            self._settle_interrupted(queue.get(run_id))
            return
        # The end and its retry in one transaction: a crash in between must not lose the retry.
        with self.store.write():
            queue.finish([RunEnd.of(queue.get(run_id), outcome, moment)])
            run = queue.get(run_id)
            retry = None
            if run.state in (RunState.FAILED, RunState.TIMED_OUT):
                retry = self._enqueue_retry(run)
        _log_end(run, retry)

    def _enqueue_retry(self, run: Run) -> Run | None:
        try:
            spec = self.store.get_workflow(run.workflow)
        except NotFound:
            return None
        planned = plan_retry(run, spec, utcnow())
        if planned is None:
            return None
        return self.store.queue.get(self.store.queue.enqueue([planned])[0])

    def _settle_interrupted(self, run: Run) -> None:
        """A run stopped by shutdown: back in the queue if it never started or may be retried."""
        try:
            retries = self.store.get_workflow(run.workflow).retries
        except NotFound:
            retries = 0
        if run.started_at is None or run.attempt <= retries:
            self.store.queue.requeue([run.id], SHUTDOWN_NOTE + "; re-queued")
        else:
            self.store.queue.finish(
                [RunEnd.of(run, Outcome(RunState.FAILED, error=SHUTDOWN_NOTE), utcnow())])

    def _settle_abandoned(self, run_ids: list[int], *, note: str, error: str) -> None:
        """Runs whose executor is gone: queued again if they never started, else failed (and
        retried if their workflow allows), in one transaction."""
        with self.store.write():
            failed = self.store.queue.settle_abandoned(run_ids, now=utcnow(), note=note,
                                                       error=error)
            retries = [(run, self._enqueue_retry(run)) for run in failed]
        for run, retry in retries:
            _log_end(run, retry)

    def _on_worker_exit(self, worker: WorkerProcess) -> None:
        self.selector.unregister(worker.stdout_fd)
        worker.proc.stdout.close()
        with contextlib.suppress(OSError):
            worker.proc.stdin.close()
        status = worker.proc.wait()
        worker.pool.remove(worker)
        for assignment in worker.assignments.values():
            if assignment.pgid:
                _kill_group(assignment.pgid)
            self._record(lambda a=assignment: self._settle_orphaned(worker, a, status))
        if not worker.retiring:
            log.warning("worker %s (pid %d) died with status %s; replacing it", worker.name,
                        worker.pid, status)
        if self.draining_until is None:
            self._watch_workers(worker.pool.fill())

    def _settle_orphaned(self, worker, assignment, status) -> None:
        """The worker died holding this run: tell the truth about it."""
        if assignment.stop_reason is StopReason.SHUTDOWN:
            self._settle_interrupted(self.store.queue.get(assignment.run_id))
            return
        self._settle_abandoned([assignment.run_id], note="its worker died before it started",
                               error=f"worker process {worker.pid} died (exit status {status})"
                                     " while running it")

    # ------------------------------------------------------------------ recovery, reload, drain

    def _recover_abandoned_runs(self) -> None:
        """Runs left `running` by a daemon that died: stop their processes, settle their state."""
        abandoned = []
        for run in self.store.queue.running():
            if run.pool is PoolName.FOREGROUND and _pid_alive(run.pid):
                continue  # a `run --now` in a terminal, still going
            if run.pgid:
                _kill_group(run.pgid)
            if run.started_at is not None:
                log.warning("run %d was running when the daemon stopped; marking it failed",
                            run.id)
            abandoned.append(run.id)
        self._settle_abandoned(abandoned, note="re-queued after a daemon restart",
                               error="the daemon stopped while this run was running "
                                     "(found at start-up)")

    def _reload(self) -> None:
        self.reload_requested = False
        self.notifier.reloading()
        old_window = self.config.off_peak
        try:
            self.config = load_config(self.config_path)
        except EasyflowError as exc:
            log.error("reload: keeping the old configuration: %s", exc)
        self.schedules.policy = self._policy()
        if self.config.off_peak != old_window:
            count = replan_off_peak(self.store.queue, self._policy(), utcnow())
            log.info("off-peak window changed: re-planned %d waiting eco runs", count)
        for mode, pool in self.pools.items():
            pool.config = self.config.pool(mode)
            pool.shrink()
            self._watch_workers(pool.fill())
        prime_schedules(self.store, utcnow())
        log.info("reloaded configuration (%s), workflows and schedules", self.config.source)
        self.notifier.ready(self._status_line())

    def _begin_drain(self) -> None:
        self.drain_phase = "grace"
        self.draining_until = time.monotonic() + self.config.drain_grace
        self.notifier.stopping()
        log.info("stopping: no new runs; waiting up to %.0fs for running runs",
                 self.config.drain_grace)
        for worker in self._all_workers():
            if any(not assignment.started for assignment in worker.assignments.values()):
                worker.release()  # what has not started goes back to the queue
            worker.retire()

    def _next_drain_phase(self) -> None:
        """Past the grace: stop what still runs; past kill_grace too: kill the workers."""
        if self.drain_phase == "grace":
            self.drain_phase = "stopping"
            for worker in self._all_workers():
                for assignment in worker.assignments.values():
                    self._stop(worker, assignment)
            self.draining_until = time.monotonic() + self.config.kill_grace + 2
        elif self.drain_phase == "stopping":
            self.drain_phase = "killing"
            for worker in self._all_workers():
                log.warning("worker %s did not stop in time; killing it", worker.name)
                worker.proc.kill()
            self.draining_until = time.monotonic() + 5

    def _stop(self, worker: WorkerProcess, assignment) -> None:
        if assignment.stop_reason is not StopReason.SHUTDOWN:
            assignment.stop_reason = StopReason.SHUTDOWN
            worker.send({"op": "cancel", "id": assignment.run_id})

    def _finished_draining(self) -> bool:
        if self.draining_until is None:
            return False
        return not self._all_workers() or (
            self.drain_phase == "killing" and time.monotonic() >= self.draining_until)

    def _shutdown(self) -> None:
        for worker in self._all_workers():
            worker.proc.kill()
        if self.backlog:
            self._retry_database()
        if self.backlog:
            log.error("%d run state changes could not be written to the database; the next "
                      "start settles those runs", len(self.backlog))
        if self.listener is not None:
            self.listener.close()
            socket_path(self.home).unlink(missing_ok=True)
        if self.store is not None:
            self.store.close()
        log.info("daemon stopped")

    # ------------------------------------------------------------------ status line

    def _status_line(self) -> str:
        depths = self.store.queue.depths()
        pools = ", ".join(f"{m.value} {p.busy}/{p.config.workers}" for m, p in self.pools.items())
        queued = ", ".join(f"{m} {n}" for m, n in depths.items())
        return f"busy: {pools}; queued: {queued}"

    def _update_status(self) -> None:
        if not self.notifier.enabled:
            return  # counting the queue on every wake-up costs, and only systemd reads it
        try:
            line = self._status_line()
        except sqlite3.OperationalError:
            return
        if line != self.last_status:
            self.last_status = line
            self.notifier.status(line)


# Ends written in bulk: no retry to plan, no shutdown to settle.
PLAIN_ENDS = (RunState.SUCCEEDED, RunState.CANCELLED)


def _ended_run(assignment: Assignment, outcome: Outcome, moment: datetime) -> EndedRun:
    run = assignment.run
    end = RunEnd(assignment.run_id, outcome, moment,
                 began_at=assignment.started_at or run.claimed_at, deadline=run.deadline)
    return EndedRun(end, run.workflow, run.mode)


def _log_end(run: Run, retry: Run | None) -> None:
    log.info("run %d (%s, %s) %s in %.2fs", run.id, run.workflow, run.mode.value,
             run.state.value, run.duration_s or 0)
    if retry is not None:
        log.info("run %d will be retried as run %d (attempt %d)", run.id, retry.id,
                 retry.attempt)


def _moment(at: float) -> datetime:
    """A worker's report time (seconds since the epoch) as the aware UTC time we store."""
    return datetime.fromtimestamp(at, UTC)


class _RequestReader:
    """Reads one JSON line from a client without blocking the loop, answers, closes."""

    def __init__(self, daemon: Daemon) -> None:
        self.daemon = daemon
        self.buffer = b""

    def on_readable(self, conn: socket.socket) -> None:
        try:
            data = conn.recv(65536)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        self.buffer += data
        self.daemon.progress_only = False
        if data and not self.buffer.endswith(b"\n") and len(self.buffer) <= MAX_REQUEST_BYTES:
            return
        self.daemon.selector.unregister(conn)
        try:
            if len(self.buffer) > MAX_REQUEST_BYTES:
                log.warning("bad request: longer than %d bytes", MAX_REQUEST_BYTES)
            elif self.buffer.strip():
                reply = self.daemon.handle_request(json.loads(self.buffer))
                conn.setblocking(True)
                conn.settimeout(1.0)
                conn.sendall(json.dumps(reply, default=str).encode() + b"\n")
        except (ValueError, KeyError, RecursionError, OSError, sqlite3.Error) as exc:
            log.warning("bad request: %s", shown(str(exc)))
        finally:
            conn.close()


def _peer_allowed(conn: socket.socket) -> bool:
    """Only our own user (or root) may talk to the daemon."""
    creds = conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    _pid, uid, _gid = struct.unpack("3i", creds)
    return uid in (os.getuid(), 0)


def _pid_alive(pid: int | None) -> bool:
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _kill_group(pgid: int) -> None:
    try:
        os.killpg(pgid, signal.SIGKILL)
    except OSError as exc:
        if exc.errno not in (errno.ESRCH, errno.EPERM):
            raise
