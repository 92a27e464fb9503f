"""The daemon as a whole: it takes the lock, opens the database and the socket, starts the
pools, recovers what a previous daemon left running, serves until it is told to stop, and
drains. The parts it wires together each live in their own module of this package.

SQLite is the single source of truth; the daemon holds only what is live: the pools, the
socket, and what each worker is doing.
"""

from __future__ import annotations

import fcntl
import functools
import logging
import os
import selectors
from pathlib import Path

from easyflow_cli.core.config import Config, load_config
from easyflow_cli.core.errors import EasyflowError
from easyflow_cli.core.model import Mode, StopReason
from easyflow_cli.core.paths import (
    database_path,
    ensure_private_dir,
    ensure_state_dir,
    run_log_path,
    socket_path,
)
from easyflow_cli.core.plan_series import config_policy
from easyflow_cli.core.planning import QueuePolicy
from easyflow_cli.core.timeutil import to_iso
from easyflow_cli.core.trust import open_private
from easyflow_cli.reporting.metrics import EasyflowCollector, LiveState, registry_of
from easyflow_cli.reporting.run_totals import SettledTotals
from easyflow_cli.reporting.running import running_now
from easyflow_cli.runtime.clock import Clock, SystemClock
from easyflow_cli.runtime.daemon.containment import Containment
from easyflow_cli.runtime.daemon.control import ControlServer, Handlers
from easyflow_cli.runtime.daemon.deliveries import Deliveries, notice_book
from easyflow_cli.runtime.daemon.dispatch import Dispatcher
from easyflow_cli.runtime.daemon.drain import Drain
from easyflow_cli.runtime.daemon.foreground_watch import ForegroundWatch
from easyflow_cli.runtime.daemon.loop import Loop
from easyflow_cli.runtime.daemon.metrics_exporter import MetricsExporter
from easyflow_cli.runtime.daemon.pruning import Pruning
from easyflow_cli.runtime.daemon.recovery import recover_abandoned_runs
from easyflow_cli.runtime.daemon.reports import WorkerReports
from easyflow_cli.runtime.daemon.signals import drain_signals, install_signals
from easyflow_cli.runtime.daemon.storage_watch import STORAGE_FAULT_EXIT, StorageWatch
from easyflow_cli.runtime.daemon.summarizing import Summarizing
from easyflow_cli.runtime.forecasts import ForecastFiles
from easyflow_cli.runtime.pools import Pool, PoolWorker, WorkerFactory, WorkerProcess
from easyflow_cli.runtime.protocol import (
    CancelOrder,
    CancelRequest,
    Done,
    PoolStatus,
    ReloadRequest,
    Reply,
    StatusReply,
    StatusRequest,
    Stopping,
    WakeRequest,
)
from easyflow_cli.runtime.recording import Recorder
from easyflow_cli.runtime.run_cgroup import CGROUP_VARIABLE
from easyflow_cli.runtime.run_marker import marker_env, new_token
from easyflow_cli.runtime.sdnotify import Notifier
from easyflow_cli.runtime.start_slot import SLOTS_VARIABLE
from easyflow_cli.scheduling.scheduler import ScheduleBook, prime_schedules
from easyflow_cli.storage.daemon_policy import publish_policy
from easyflow_cli.storage.daemon_tokens import record_token
from easyflow_cli.storage.plan_estimate import eco_estimate
from easyflow_cli.storage.run_queue import cancel_run, replan_eco
from easyflow_cli.storage.store import Store

log = logging.getLogger("easyflow.daemon")
# Counting the queue reads every waiting run's index entry: the status line's queue counts are
# counted again at most this often, its pools' figures at every wake-up.
QUEUE_COUNT_EVERY_S = 5.0


class Daemon:
    def __init__(self, home: Path, config_path: str | None = None, *,
                 clock: Clock | None = None, spawn: WorkerFactory = WorkerProcess) -> None:
        self.home = ensure_state_dir(home)
        self.slots = ensure_private_dir(self.home / "workers")  # start_slot.py
        self.logs_dir = str(run_log_path(self.home, 0).parent)
        self.config_path = config_path
        self.config: Config = load_config(config_path)
        self.clock: Clock = clock or SystemClock()
        self.notifier = Notifier.from_env()
        self.selector: selectors.BaseSelector = selectors.DefaultSelector()
        self.token = new_token()  # marks the processes of every run this daemon executes
        self.containment = Containment.detect()
        self.pools = {mode: Pool(mode, self.config.pool(mode), spawn=spawn,
                                 worker_env=self._worker_env()) for mode in Mode}
        self.drain = Drain(self.clock, self.all_workers)
        self.loop = Loop(self)
        self.control = ControlServer(socket_path(self.home), self.selector, self._handlers(),
                                     self.clock)
        self.started_at = self.clock.now()
        self.stop_requested = False
        self.reload_requested = False
        self.last_status = ""
        self.status_depths: dict[str, int] = {}
        self.depths_counted_at: float | None = None  # monotonic
        self.lock_fd: int | None = None
        self.store: Store | None = None
        self.serving = False  # what the metrics' live state reports
        self.metrics = self._metrics_exporter()
        self.deliveries: Deliveries | None = None
        self.forecasts: ForecastFiles | None = None

    # ------------------------------------------------------------------ lifecycle

    def run(self) -> int:
        """Serve until stopped; the exit code (`STORAGE_FAULT_EXIT` after a storage fault)."""
        self.start()
        try:
            self.loop.run()
        finally:
            self.shutdown()
        return 0 if self.storage.fault is None else STORAGE_FAULT_EXIT

    def start(self, *, signals: bool = True) -> None:
        """Everything up to serving; `signals` False leaves the process's handlers alone."""
        self._acquire_lock()
        self.store = store = Store.open(self.home, watched=True)
        self.storage = StorageWatch(store)
        store.check_integrity()
        self.recorder = Recorder(store, self.clock)
        self.dispatcher = Dispatcher(store, self.pools, self.recorder, self.clock, self.config,
                                     self.logs_dir)
        self.reports = WorkerReports(store, self.recorder, self.clock, self.config,
                                     self.selector, self.dispatcher.log_path, self.token,
                                     self.containment, self.slots)
        self.schedules = ScheduleBook(store, self._policy(), self.started_at, self.config.costs)
        self.foreground = ForegroundWatch(store, self.clock)
        store.queue.notices = book = notice_book(self.config, store)
        store.queue.pricing = self.forecasts = ForecastFiles(
            self.config, monotonic=self.clock.monotonic, in_background=True)
        self.deliveries = Deliveries(functools.partial(Store.open, self.home), self.clock, book)
        self.pruning = Pruning(store, self.config, self.home, self.clock.now())
        self.summarizing = Summarizing(store, self.clock.now())
        if signals:
            self._install_signals()
        recover_abandoned_runs(store, self.clock, self.containment, self.slots)
        self.containment.prune()
        # Recorded before any worker runs a step: recovery after a kill -9 looks for it.
        record_token(store, self.token, self.clock.now())
        prime_schedules(store, self.clock.now())
        publish_policy(store, self.schedules.policy, self.clock.now())
        self.control.open()
        self.deliveries.start()
        for pool in self.pools.values():
            self.reports.watch(pool.fill())
        self.serving = True
        self.metrics.start()
        log.info("daemon %d serving %s (config: %s)", os.getpid(), self.home, self.config.source)
        log.info("runs' processes are contained by %s", self.containment.how)
        self.notifier.ready(self._status_line())

    def begin_drain(self) -> None:
        self.notifier.stopping()
        self.reports.draining = True
        self.drain.begin(self.config.drain_grace)

    def storage_intact(self) -> bool:
        """Whether the database files are still the ones in use. The first time they are not:
        say so loudly and stop taking work (the drain lets running runs finish)."""
        problem = self.storage.newly_broken()
        if problem is not None:
            log.error("storage fault: %s under the running daemon; taking no more work, then "
                      "saving what it holds and exiting to start again", problem)
            if not self.drain.active:
                self.begin_drain()
            self.notifier.status(self._status_line())
        return self.storage.fault is None

    def shutdown(self) -> None:
        for worker in self.all_workers():
            worker.kill()
        if self.deliveries is not None:
            self.deliveries.stop()
        if self.recorder.backlog:
            self.recorder.retry()
        if self.recorder.backlog:
            log.error("%d run state changes could not be written to the database; the next "
                      "start settles those runs", len(self.recorder.backlog))
        self.control.close()
        self.serving = False
        self.metrics.stop()
        self.pruning.close()
        if self.store is not None:
            if self.storage.fault is not None:
                self.storage.recover(self.clock.now())
            self.store.close()
        if self.lock_fd is not None:
            os.close(self.lock_fd)
        log.info("daemon stopped")

    def all_workers(self) -> list[PoolWorker]:
        return [w for pool in self.pools.values() for w in pool.workers]

    def _metrics_exporter(self) -> MetricsExporter:
        collector = EasyflowCollector(functools.partial(Store, database_path(self.home)),
                                      lambda: self.config, lambda _store: self.live_state(),
                                      SettledTotals().read)
        return MetricsExporter(self.config.metrics, registry_of(collector))

    def live_state(self) -> LiveState | None:
        """The pools' workers by state, for the metrics (read from their threads)."""
        if not self.serving:
            return None
        return LiveState({mode.value: pool.worker_states() for mode, pool in self.pools.items()})

    def _worker_env(self) -> dict[str, str]:
        env = {**marker_env(None, self.token), SLOTS_VARIABLE: str(self.slots)}
        if self.containment.cgroup is not None:
            env[CGROUP_VARIABLE] = str(self.containment.cgroup)
        return env

    def _policy(self) -> QueuePolicy:
        return config_policy(self.config)

    def _acquire_lock(self) -> None:
        path = self.home / "daemon.lock"
        self.lock_fd = open_private(path, os.O_RDWR | os.O_CREAT)
        try:
            fcntl.flock(self.lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(self.lock_fd, 32, 0).decode().strip() or "?"
            raise EasyflowError(f"another daemon is already running on {self.home} "
                                f"(pid {holder})") from None
        os.ftruncate(self.lock_fd, 0)
        os.pwrite(self.lock_fd, f"{os.getpid()}\n".encode(), 0)

    def _install_signals(self) -> None:
        self.signal_r = install_signals(self)
        self.selector.register(self.signal_r, selectors.EVENT_READ, self._drain_signal_pipe)

    def _drain_signal_pipe(self, fd: int) -> bool:
        drain_signals(fd)
        return True

    # ------------------------------------------------------------------ requests

    def _handlers(self) -> Handlers:
        return {WakeRequest: self._on_wake, ReloadRequest: self._on_reload,
                StatusRequest: self._on_status, CancelRequest: self._on_cancel}

    def _on_wake(self, request: WakeRequest) -> Reply:
        if not self.storage_intact():
            return Stopping(f"the daemon stopped taking work ({self.storage.fault}) and "
                            "restarts on its files")
        if self.drain.active:
            return Stopping()  # the runs stay queued; the next start runs them
        self.loop.dispatch_now()
        self.notify.runs_queued()
        return Done()

    def _on_reload(self, request: ReloadRequest) -> Reply:
        self.reload_requested = True
        return Done()

    def _on_status(self, request: StatusRequest) -> Reply:
        return self.status()

    def _on_cancel(self, request: CancelRequest) -> Reply:
        for worker in self.all_workers():
            assignment = worker.assignments.get(request.id)
            if assignment is not None:
                assignment.stop_reason = StopReason.CANCELLED
                worker.send(CancelOrder(request.id))
                return Done("stopping")
        return Done(cancel_run(self.db.queue, request.id, now=self.clock.now()).state.value)

    def status(self) -> StatusReply:
        store = self.db
        return StatusReply(
            pid=os.getpid(), since=to_iso(self.started_at) or "",
            state="draining" if self.drain.active else "running",
            home=str(self.home), config=self.config.source,
            pools={mode.value: PoolStatus(pool.busy, pool.config.workers, pool.ready,
                                          [w.pid for w in pool.workers], pool.worker_states())
                   for mode, pool in self.pools.items()},
            queue=self._depths(), next_fires=store.upcoming_schedules(5),
            running=running_now(store.queue, self.clock.now()),
            fault=self.storage.fault,
            notifications={"pending": store.outbox.pending_count(),
                           "failing": self.notify.trouble()})

    @property
    def notify(self) -> Deliveries:
        assert self.deliveries is not None, "the daemon has not started"
        return self.deliveries

    @property
    def db(self) -> Store:
        assert self.store is not None, "the daemon has not started"
        return self.store

    # ------------------------------------------------------------------ reload, status line

    def reload(self) -> None:
        self.reload_requested = False
        self.notifier.reloading()
        old_policy = self.schedules.policy
        try:
            self.config = load_config(self.config_path)
        except EasyflowError as exc:
            log.error("reload: keeping the old configuration: %s", exc)
        self.dispatcher.config = self.reports.config = self.pruning.config = self.config
        self.pruning.look_now(self.clock.now())  # `keep` may be shorter now
        if self.forecasts is not None:
            self.forecasts.reload(self.config)  # the tariff and forecast files read again
        self.schedules.policy = policy = self._policy()
        self.schedules.costs = self.config.costs
        store = self.db
        publish_policy(store, policy, self.clock.now())
        if policy != old_policy:
            count = replan_eco(store.queue, policy, self.clock.now(),
                               lambda workflow: eco_estimate(store.queue, workflow, policy))
            log.info("eco planning changed: re-planned %d waiting eco runs", count)
        for mode, pool in self.pools.items():
            pool.config = self.config.pool(mode)
            pool.shrink()
            self.reports.watch(pool.fill())
        if self.config.metrics != self.metrics.config:
            self.metrics.stop()
            self.metrics = self._metrics_exporter()
            self.metrics.start()
        prime_schedules(store, self.clock.now())
        store.queue.notices = self.notify.book = notice_book(self.config, store)
        self.notify.wake()
        log.info("reloaded configuration (%s), workflows and schedules", self.config.source)
        self.notifier.ready(self._status_line())

    def _depths(self) -> dict[str, int]:
        return {mode.value: count for mode, count in self.db.queue.depths().items()}

    def _status_line(self, depths: dict[str, int] | None = None) -> str:
        depths = self._depths() if depths is None else depths
        pools = ", ".join(f"{m.value} {p.busy}/{p.config.workers}" for m, p in self.pools.items())
        queued = ", ".join(f"{m} {n}" for m, n in depths.items())
        line = f"busy: {pools}; queued: {queued}"
        if self.storage.fault is not None:
            line = f"storage fault: {self.storage.fault}; stopping. {line}"
        return line

    def update_status(self) -> None:
        if not self.notifier.enabled:
            return  # only systemd reads it
        try:
            line = self._status_line(self._recent_depths())
        except Exception as exc:  # a status line is not worth stopping for
            log.debug("status line skipped: %s", exc)
            return
        if line != self.last_status:
            self.last_status = line
            self.notifier.status(line)

    def _recent_depths(self) -> dict[str, int]:
        """The queue's depths for the status line, counted again only every so often."""
        now = self.clock.monotonic()
        if self.depths_counted_at is None or now - self.depths_counted_at >= QUEUE_COUNT_EVERY_S:
            self.status_depths = self._depths()
            self.depths_counted_at = now
        return self.status_depths
