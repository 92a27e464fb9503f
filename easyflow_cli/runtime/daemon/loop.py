"""The daemon's event loop: the one place it waits, and the only reader of its clock's time to
decide how long.

It sleeps until something is due (a schedule fire, a promotion, a deferred run becoming ready,
a release, a drain phase, a run past its time, the watchdog, a database retry, an idle
connection's timeout, a look at runs a terminal runs) or something arrives (a client's request,
a worker's report, a signal). Each wake-up runs the same short sequence: fire due schedules,
promote runs near their deadline, hand ready runs to idle workers; then it writes what the
wake-up recorded, in one transaction, with the claims of runs for the workers its reports
freed when nothing else is due first (one commit per wake-up of a busy daemon)."""

from __future__ import annotations

import logging
import selectors
import sqlite3
from datetime import datetime
from typing import Protocol

from easyflow_cli.core.config import Config
from easyflow_cli.core.errors import DamagedRow
from easyflow_cli.core.model import Mode
from easyflow_cli.runtime.clock import Clock, StepWatch
from easyflow_cli.runtime.daemon.control import ControlServer
from easyflow_cli.runtime.daemon.deliveries import Deliveries
from easyflow_cli.runtime.daemon.dispatch import Dispatcher
from easyflow_cli.runtime.daemon.drain import Drain
from easyflow_cli.runtime.daemon.foreground_watch import ForegroundWatch
from easyflow_cli.runtime.daemon.metrics_exporter import MetricsExporter
from easyflow_cli.runtime.daemon.overdue import next_overdue_in, stop_overdue
from easyflow_cli.runtime.daemon.pruning import LOGS_WAIT_S, Pruning
from easyflow_cli.runtime.daemon.summarizing import Summarizing
from easyflow_cli.runtime.pools import Pool
from easyflow_cli.runtime.recording import Recorder
from easyflow_cli.runtime.sdnotify import Notifier
from easyflow_cli.scheduling.scheduler import Fire, ScheduleBook
from easyflow_cli.storage.run_queue import RunQueue
from easyflow_cli.storage.store import CHECKPOINT_WHEN_QUIET_S, Store

log = logging.getLogger("easyflow.daemon")

# epoll takes a sleep of at most 2**31 - 1 ms (under 25 days); a run due later (a deadline a
# year away puts its promotion there) is found again by sleeping this long at a time.
MAX_SLEEP_S = 24 * 3600.0


class Served(Protocol):
    """What the loop drives: the daemon (service.py), seen from here."""

    clock: Clock
    selector: selectors.BaseSelector
    config: Config
    pools: dict[Mode, Pool]
    notifier: Notifier
    drain: Drain
    control: ControlServer
    foreground: ForegroundWatch
    metrics: MetricsExporter
    recorder: Recorder
    dispatcher: Dispatcher
    schedules: ScheduleBook
    pruning: Pruning
    summarizing: Summarizing
    stop_requested: bool
    reload_requested: bool

    @property
    def db(self) -> Store: ...

    @property
    def notify(self) -> Deliveries: ...

    def begin_drain(self) -> None: ...

    def reload(self) -> None: ...

    def update_status(self) -> None: ...

    def storage_intact(self) -> bool: ...


class Loop:
    def __init__(self, daemon: Served) -> None:
        self.daemon = daemon
        self.clock = daemon.clock
        self.selector = daemon.selector
        # True while the last wake-up brought only workers' "started"/"step" reports.
        self.progress_only = False
        self.sleep_deadline: float | None = None  # monotonic; when something is next due
        self.wal_dirty = False  # something happened since the last checkpoint
        self.clock_steps = StepWatch(self.clock)
        self.dispatched = False  # the event being handled had runs dispatched (a wake-up does)

    def run(self) -> None:
        while not self.daemon.drain.finished():
            self.tick()

    def tick(self, wait_limit: float | None = None) -> None:
        """One wake-up: do what is due, sleep until the next thing (at most `wait_limit`
        seconds: tests drive the loop with a fake clock), handle what arrived."""
        daemon = self.daemon
        if daemon.stop_requested and not daemon.drain.active:
            daemon.begin_drain()
        timeout = self._after_progress() if self._may_skip_scheduling() else self._full_tick()
        if wait_limit is not None:
            timeout = wait_limit if timeout is None else min(timeout, wait_limit)
        events = self._wait(timeout)
        # Each handler says whether what it took made something due or free; a dispatch
        # after it covers what the events before it freed too.
        self.progress_only = bool(events)
        undispatched = False
        for key, _ in events:
            self.dispatched = False
            if self._handle(key):
                self.progress_only = False
                undispatched = not self.dispatched
        if undispatched and self._may_dispatch_with_reports():
            self.dispatch_now()
        daemon.recorder.write()
        daemon.notify.wake_for(daemon.db)
        if daemon.notifier.watchdog_interval:
            daemon.notifier.watchdog()

    def _handle(self, key: selectors.SelectorKey) -> bool:
        try:
            return key.data(key.fileobj)
        except DamagedRow as exc:  # a run changed by other means: named, and served around
            log.error("%s; left as it is", exc)
            return True

    def _wait(self, timeout: float | None) -> list[tuple[selectors.SelectorKey, int]]:
        """Sleep until something arrives or `timeout`; checkpoint and prune if it stays quiet
        a while."""
        wants_quiet = self.wal_dirty or self._pruning_due() or self._summarizing_due()
        if wants_quiet and (timeout is None or timeout > CHECKPOINT_WHEN_QUIET_S):
            events = self.selector.select(CHECKPOINT_WHEN_QUIET_S)
            if not events:
                if self.wal_dirty:
                    self._checkpoint()
                events = self._prune_while_quiet() or self._summarize_while_quiet()
            if events:
                return self._arrived(events)
            timeout = self.time_left() if timeout is not None else None
        return self._arrived(self.selector.select(timeout))

    def _arrived(self, events: list[tuple[selectors.SelectorKey, int]]
                 ) -> list[tuple[selectors.SelectorKey, int]]:
        if events:
            self.wal_dirty = True
            now = self.clock.now()
            self.daemon.pruning.look_again(now)
            self.daemon.summarizing.look_again(now)
        return events

    def _pruning_due(self) -> bool:
        return self.daemon.recorder.healthy and self.daemon.pruning.due(self.clock.now())

    def _prune_while_quiet(self) -> list[tuple[selectors.SelectorKey, int]]:
        """Prune a batch at a time for as long as nothing arrives (or nothing is left)."""
        pruning = self.daemon.pruning
        while self._pruning_due() and not self.daemon.drain.active:
            wait = LOGS_WAIT_S
            if pruning.ready():
                wait = 0.0
                try:
                    pruning.step(self.clock.now())
                    # Pruned runs leave their summarized hours dirty.
                    self.daemon.summarizing.look_now(self.clock.now())
                except sqlite3.OperationalError as exc:  # busy, disk full: the next quiet time
                    log.warning("pruning paused: %s", exc)
                    pruning.back_off(self.clock.now())
                    return []
            events = self.selector.select(wait)
            if events:
                return events
        return []

    def _summarizing_due(self) -> bool:
        return self.daemon.recorder.healthy and self.daemon.summarizing.due(self.clock.now())

    def _summarize_while_quiet(self) -> list[tuple[selectors.SelectorKey, int]]:
        """Summarize a batch at a time for as long as nothing arrives (or nothing is left)."""
        summarizing = self.daemon.summarizing
        while self._summarizing_due() and not self.daemon.drain.active:
            try:
                summarizing.step(self.clock.now())
            except sqlite3.OperationalError as exc:  # busy, disk full: the next quiet time
                log.warning("summarizing paused: %s", exc)
                summarizing.back_off(self.clock.now())
                return []
            events = self.selector.select(0.0)
            if events:
                return events
        return []

    def _checkpoint(self) -> None:
        self.wal_dirty = False
        self.daemon.storage_intact()
        try:
            self.daemon.db.checkpoint()
        except sqlite3.OperationalError as exc:  # busy, read-only, disk full: next quiet time
            log.debug("checkpoint skipped: %s", exc)
        self.daemon.metrics.quiet()

    def _may_skip_scheduling(self) -> bool:
        # Only "started"/"step" reports came in: nothing became due or free, so skip the
        # queries. The reporting worker is usually waiting for us meanwhile: its pipe write
        # woke this loop on its own CPU, and its step starts once we sleep again.
        daemon = self.daemon
        return (self.progress_only and not daemon.drain.active and daemon.recorder.healthy
                and not daemon.reload_requested)

    def _may_dispatch_with_reports(self) -> bool:
        """Whether the runs the reports freed workers for may be claimed now, in the reports'
        own transaction: only when nothing else is due first (a fire, a promotion, a reload,
        a drain), which the next wake-up's full turn would do before it claims."""
        daemon = self.daemon
        if self.progress_only or daemon.drain.active or daemon.stop_requested:
            return False
        if daemon.reload_requested or not daemon.recorder.healthy:
            return False
        time_left = self.time_left()
        return time_left is None or time_left > 0

    def _full_tick(self) -> float | None:
        """Retry the database, then reload, fire, promote, dispatch; how long to sleep then."""
        daemon = self.daemon
        if daemon.recorder.retry_due():
            daemon.recorder.retry()
        stop_overdue(daemon.pools.values(), self.clock.monotonic())
        if daemon.recorder.healthy and daemon.storage_intact():
            self._do_due_work()
        daemon.drain.advance(daemon.config.kill_grace)
        daemon.control.tend()
        daemon.update_status()
        timeout = self._sleep_seconds(self.clock.now())
        self.sleep_deadline = None if timeout is None else self.clock.monotonic() + timeout
        return timeout

    def _after_progress(self) -> float | None:
        """Only starts and steps came in: nothing is newly due but the started runs' limits."""
        overdue = next_overdue_in(self.daemon.pools.values(), self.clock.monotonic())
        if overdue is not None:
            due = self.clock.monotonic() + overdue
            if self.sleep_deadline is None or due < self.sleep_deadline:
                self.sleep_deadline = due
        return self.time_left()

    def time_left(self) -> float | None:
        if self.sleep_deadline is None:
            return None
        return max(0.0, self.sleep_deadline - self.clock.monotonic())

    def _do_due_work(self) -> None:
        """Reload, fire, promote, dispatch: each a short transaction; a failed write backs off."""
        daemon = self.daemon
        try:
            if daemon.reload_requested:
                daemon.reload()
            if not daemon.drain.active:
                now = self.clock.now()
                self._fire_schedules(now)
                self._promote(now)
                daemon.dispatcher.dispatch(now)
                daemon.foreground.check_if_due()
        except sqlite3.OperationalError as exc:
            daemon.recorder.failed(exc)
        except DamagedRow as exc:
            log.error("%s; left as it is", exc)
        daemon.recorder.write()

    def dispatch_now(self) -> None:
        """Hand runs over at once: woken runs before the wake-up is answered (the client,
        woken by the answer, would otherwise compete with them for the CPU), and runs for the
        workers a wake-up's reports freed, with those reports."""
        daemon = self.daemon
        if daemon.drain.active or not daemon.recorder.healthy:
            return
        try:
            daemon.dispatcher.dispatch(self.clock.now())
            self.dispatched = True
        except sqlite3.OperationalError as exc:
            daemon.recorder.failed(exc)
        except DamagedRow as exc:
            log.error("%s; left as it is", exc)
        daemon.recorder.write()

    def _fire_schedules(self, now: datetime) -> None:
        if fire_schedules(self.daemon.schedules, self.clock_steps, now):
            self.daemon.notify.runs_queued()

    def _promote(self, now: datetime) -> None:
        promote(self.daemon.db.queue, now)

    def _sleep_seconds(self, now: datetime) -> float | None:
        """Until the next thing that is due; None (sleep until woken) when nothing is."""
        daemon = self.daemon
        waits: list[float] = []
        if daemon.recorder.retry_at is not None:
            waits.append(daemon.recorder.retry_at - self.clock.monotonic())
        else:
            queue = daemon.db.queue
            due = [daemon.schedules.next_due(), queue.next_promotion_at()]
            for quiet_work in (daemon.pruning, daemon.summarizing):
                if quiet_work.due_at is not None and quiet_work.due_at > now:
                    due.append(quiet_work.due_at)  # one due now waits for a quiet moment
            due += [queue.next_ready_at(mode, now) for mode in Mode
                    if daemon.pools[mode].idle_workers()]
            waits += [(moment - now).total_seconds() for moment in due if moment is not None]
            release = daemon.dispatcher.next_release_in()
            if release is not None:
                waits.append(release)
        overdue = next_overdue_in(daemon.pools.values(), self.clock.monotonic())
        if overdue is not None:
            waits.append(overdue)
        waits += daemon.drain.waits()
        for moment in (daemon.control.next_due(), daemon.foreground.due_at()):
            if moment is not None:
                waits.append(moment - self.clock.monotonic())
        if daemon.notifier.watchdog_interval:
            waits.append(daemon.notifier.watchdog_interval)
        return min(max(0.0, min(waits)), MAX_SLEEP_S) if waits else None


def fire_schedules(schedules: ScheduleBook, clock_steps: StepWatch, now: datetime) -> list[Fire]:
    """Fire the schedules that are due, after moving `every` schedules with a stepped clock
    (the daemon's and the coordinator's wake-ups both begin so)."""
    step = clock_steps.step()
    if step:
        moved = schedules.follow_clock_step(step)
        log.warning("the wall clock was stepped by %+.0fs; %d `every` schedules moved with "
                    "it, keeping their intervals", step, moved)
    fires = schedules.fire_due(now)
    for fire in fires:
        if fire.run_id is None:
            log.info("schedule %d (%s) fired; coalesced with a run still waiting",
                     fire.schedule_id, fire.workflow)
        else:
            log.info("schedule %d (%s) fired: run %d (%s)", fire.schedule_id, fire.workflow,
                     fire.run_id, fire.trigger.value)
    return fires


def promote(queue: RunQueue, now: datetime) -> None:
    """Waiting runs whose deadline came near move to the real-time queue."""
    for run_id in queue.promote(now):
        log.info("run %d promoted to real-time: its deadline is near", run_id)
