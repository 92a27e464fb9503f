"""The daemon of a cluster: `easyflow daemon` with a `[cluster]` coordinates workers on other
machines instead of running runs itself.

It makes the decisions the daemon makes on one box, with the same code: schedules fire through
the `ScheduleBook` (catch-up, coalescing, jitter), runs are planned by `core/planning.py` (modes
and reasons, off-peak or forecast windows), waiting runs are promoted near their deadline,
claims follow the queue's order and `max_concurrent`, eco runs go in batches, and runs nobody
holds are settled by the daemon's rules (retries included). What changes is where the queue
lives (PostgreSQL), who runs a run (a Celery worker of its pool with a free slot, see
`dispatch.py`) and how a dead worker is found (its silent heartbeat, see `leases.py`).

Only one coordinator is active: the one holding the coordinator lock (`pg_leadership.py`).
Another one started waits as a standby, asking for the lock every `STANDBY_POLL_S`, and takes
over when the active one's connection ends. Each wake-up (a `NOTIFY` that a run may be ready or
a slot free, or that a command changed workflows or schedules; a signal; the next due moment)
fires, promotes, settles what is due and dispatches; a database error stops the coordinator
(exit 1) for a standby or systemd to restart it, since nothing it holds is lost: the runs are
rows. What the active coordinator does besides deciding (notifications, history retention,
`/metrics`) runs off this loop, in `duties.py`.
"""

from __future__ import annotations

import logging
import os
import selectors
from collections.abc import Callable
from datetime import datetime

import psycopg

from easyflow_cli.core.cluster_config import ClusterConfig, masked
from easyflow_cli.core.config import Config, load_config
from easyflow_cli.core.errors import BadInput, EasyflowError
from easyflow_cli.core.plan_series import config_policy
from easyflow_cli.runtime.clock import Clock, StepWatch, SystemClock
from easyflow_cli.runtime.cluster import engine
from easyflow_cli.runtime.cluster.dispatch import RemoteDispatcher, Send
from easyflow_cli.runtime.cluster.duties import Duties
from easyflow_cli.runtime.cluster.leases import Leases
from easyflow_cli.runtime.daemon.loop import MAX_SLEEP_S, fire_schedules, promote
from easyflow_cli.runtime.daemon.signals import drain_signals, install_signals
from easyflow_cli.runtime.sdnotify import Notifier
from easyflow_cli.scheduling.scheduler import ScheduleBook, prime_schedules
from easyflow_cli.storage.pg_dispatch import PgDispatch
from easyflow_cli.storage.pg_leadership import Leadership
from easyflow_cli.storage.pg_store import PgStore
from easyflow_cli.storage.pg_wakeups import Changes, Wakeups
from easyflow_cli.storage.plan_estimate import eco_estimate
from easyflow_cli.storage.run_queue import replan_eco

log = logging.getLogger("easyflow.coordinator")

STANDBY_POLL_S = 1.0
FAULT_EXIT = 1
Handler = Callable[[], None]


def celery_sender(broker_url: str) -> Send:
    return engine.Sender(engine.make_app(broker_url))


class Coordinator:
    def __init__(self, config_path: str | None = None, *, clock: Clock | None = None,
                 send: Send | None = None) -> None:
        self.config_path = config_path
        self.config: Config = load_config(config_path)
        self.cluster = cluster_of(self.config)
        if send is None:
            if self.cluster.broker_url is None:
                raise BadInput(f"{self.config.source}: the coordinator needs a broker: set "
                               "[cluster] broker_url (or EASYFLOW_BROKER_URL)")
            send = celery_sender(self.cluster.broker_url)
        self.send = send
        self.clock: Clock = clock or SystemClock()
        self.notifier = Notifier.from_env()
        self.selector = selectors.DefaultSelector()
        self.stop_requested = False
        self.reload_requested = False
        self.exit_code = 0

    # ------------------------------------------------------------------ lifecycle

    def run(self) -> int:
        """Wait to lead, then coordinate until stopped; the exit code."""
        self._install_signals()
        try:
            with Leadership(self.cluster.database_url) as leadership:
                if not self.wait_to_lead(leadership):
                    return 0
                self.start(leadership)
                try:
                    while not self.stop_requested:
                        self.tick()
                finally:
                    self.shutdown()
        except psycopg.Error as exc:
            log.error("the database failed: %s; stopping (a standby or the next start takes "
                      "over)", str(exc).strip())
            return FAULT_EXIT
        return self.exit_code

    def wait_to_lead(self, leadership: Leadership) -> bool:
        """Take the coordinator lock, as a standby for as long as another holds it; False when
        told to stop first."""
        if leadership.try_take():
            return True
        log.info("standby: another coordinator is active on %s; taking over when it stops",
                 masked(self.cluster.database_url))
        self.notifier.ready("standby: another coordinator is active")
        while not self.stop_requested:
            self._wait(STANDBY_POLL_S)
            if not self.stop_requested and leadership.try_take():
                log.info("the active coordinator is gone: taking over")
                return True
        return False

    def start(self, leadership: Leadership) -> None:
        """Everything up to coordinating, once the lock is held."""
        url = self.cluster.database_url
        self.leadership = leadership
        self.store = store = PgStore(url)
        self.queue = PgDispatch(store, store.queue)
        self.wakeups = Wakeups(url)
        self.dispatcher = RemoteDispatcher(self.queue, self.send, self.config,
                                           self.cluster.lease)
        self.leases = Leases(store, self.queue, self.cluster, self.clock)
        now = self.clock.now()
        self.schedules = ScheduleBook(store, config_policy(self.config), now, self.config.costs)
        self.clock_steps = StepWatch(self.clock)
        prime_schedules(store, now)
        store.publish_policy(self.schedules.policy, now)
        self._watch(self.wakeups.fileno(), self._woken)
        self._listen_for_changes()
        self.duties = Duties(store, self.config, self.cluster, self.clock)
        self.duties.start(self._watch)
        self.leadership_fd = leadership.fileno()  # unreadable once the connection is lost
        self._watch(self.leadership_fd, self._check_leadership)
        log.info("coordinator %d active on %s (config: %s)", os.getpid(), masked(url),
                 self.config.source)
        self.notifier.ready("coordinating")

    def tick(self, wait_limit: float | None = None) -> None:
        """One wake-up: reload if asked, fire, promote, settle what is due, dispatch; then
        sleep until the next due moment (at most `wait_limit`) or until woken."""
        if self.reload_requested:
            self.reload()
        now = self.clock.now()
        fire_schedules(self.schedules, self.clock_steps, now)
        promote(self.store.queue, now)
        self.leases.settle_if_due(now)
        self.dispatcher.dispatch(now)
        timeout = self._sleep_seconds(now)
        self._wait(timeout if wait_limit is None else min(timeout, wait_limit))
        self.duties.woke()
        if self.notifier.watchdog_interval:
            self.notifier.watchdog()

    def shutdown(self) -> None:
        """Runs on workers go on: they are theirs, and the next coordinator sees them."""
        self.notifier.stopping()
        self.duties.stop()
        self.wakeups.close()
        self.changes.close()
        self.store.close()
        log.info("coordinator stopped")

    def reload(self) -> None:
        """SIGHUP: the configuration read again (its database stays the one in use); eco runs
        waiting are re-planned when the eco planning changed."""
        self.reload_requested = False
        try:
            config = load_config(self.config_path)
            cluster = cluster_of(config)
        except EasyflowError as exc:
            log.error("reload: keeping the old configuration: %s", exc)
            return
        if cluster.database_url != self.cluster.database_url:
            log.error("reload: the database cannot change under a running coordinator; "
                      "restart it to use %s", masked(cluster.database_url))
        self.config = self.dispatcher.config = config
        self.cluster = self.leases.cluster = cluster_with_url(cluster, self.cluster)
        self.dispatcher.lease = cluster.lease
        self.duties.reload(config, self.cluster)
        self._replan(config)
        log.info("reloaded configuration (%s)", config.source)

    def _replan(self, config: Config) -> None:
        store, now = self.store, self.clock.now()
        old_policy, self.schedules.policy = self.schedules.policy, config_policy(config)
        self.schedules.costs = config.costs
        policy = self.schedules.policy
        store.publish_policy(policy, now)
        if policy != old_policy:
            count = replan_eco(store.queue, policy, now,
                               lambda workflow: eco_estimate(store.queue, workflow, policy))
            log.info("eco planning changed: re-planned %d waiting eco runs", count)
        prime_schedules(store, now)

    # ------------------------------------------------------------------ waiting

    def _sleep_seconds(self, now: datetime) -> float:
        """Until the next due moment: a schedule's fire, a promotion, a run becoming ready for
        a pool with room, the next look for runs nobody holds."""
        queue, rooms = self.store.queue, self.dispatcher.rooms
        # The next promotion read before the dispatch: a run claimed since is no longer due,
        # so at worst this wakes early, to find nothing to promote.
        moments = [self.schedules.next_due(),
                   rooms.next_promotion if rooms else queue.next_promotion_at()]
        moments += [queue.next_ready_at(mode, now) for mode in self.dispatcher.idle_modes()]
        waits = [(moment - now).total_seconds() for moment in moments if moment is not None]
        waits.append(self.leases.next_in())
        if self.notifier.watchdog_interval:
            waits.append(self.notifier.watchdog_interval)
        return min(max(0.0, min(waits)), MAX_SLEEP_S)

    def _wait(self, timeout: float) -> None:
        for key, _ in self.selector.select(timeout):
            key.data()

    def _watch(self, fd: int, handler: Handler) -> None:
        self.selector.register(fd, selectors.EVENT_READ, handler)

    def _woken(self) -> None:
        self.wakeups.modes()  # read, so that the descriptor is quiet again: any mode wakes all

    def _listen_for_changes(self) -> None:
        """Workflows and schedules changed by commands on any machine are taken up at once."""
        self.changes = Changes(self.cluster.database_url,
                               own_pid=self.store.conn.info.backend_pid)
        self._watch(self.changes.fileno(), self._changed)

    def _changed(self) -> None:
        """A command changed workflows or schedules: schedules new to the book get their first
        fire time (if the command has not given it yet), and this wake-up fires, dispatches
        and sleeps by the schedules as they are now."""
        if self.changes.changed():
            prime_schedules(self.store, self.clock.now())

    def _check_leadership(self) -> None:
        if self.leadership.still_held():
            return
        log.error("the coordinator lock is lost (its database connection ended); stopping")
        self.selector.unregister(self.leadership_fd)
        self.stop_requested = True
        self.exit_code = FAULT_EXIT

    def _install_signals(self) -> None:
        signals = install_signals(self)
        self._watch(signals, lambda: drain_signals(signals))


def cluster_of(config: Config) -> ClusterConfig:
    if config.cluster is None:
        raise BadInput(f"{config.source}: no [cluster] (nor EASYFLOW_DATABASE_URL): nothing "
                       "to coordinate")
    return config.cluster


def cluster_with_url(new: ClusterConfig, old: ClusterConfig) -> ClusterConfig:
    """The reloaded cluster settings, on the database in use."""
    return ClusterConfig(old.database_url, new.broker_url, new.lease, new.dispatch_timeout)
