"""What the active coordinator does for the whole cluster besides deciding, as the daemon does
on one box: notifications delivered (`notifications.py`), history pruned (`pruning.py`), the
Prometheus metrics served (the daemon's `MetricsExporter`, read from PostgreSQL), and the ends
it settles itself (a silent worker's runs) charged and notified as a worker's are.

Each runs off the dispatch path, in threads with connections of their own; the coordinator only
wakes them (one `Event.set` per wake-up). A standby does none of it: the coordinator starts its
duties once it holds the lock.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable

from easyflow_cli.core.cluster_config import ClusterConfig
from easyflow_cli.core.config import Config
from easyflow_cli.core.notify import NoticeBook
from easyflow_cli.reporting.metrics import EasyflowCollector, LiveState, cluster_state, registry_of
from easyflow_cli.reporting.run_totals import SettledTotals
from easyflow_cli.runtime.clock import Clock
from easyflow_cli.runtime.cluster.execution import notice_book
from easyflow_cli.runtime.cluster.notifications import ClusterDeliveries
from easyflow_cli.runtime.cluster.pruning import HistoryPruning
from easyflow_cli.runtime.daemon.metrics_exporter import MetricsExporter
from easyflow_cli.runtime.forecasts import ForecastFiles
from easyflow_cli.storage.backend import Backend
from easyflow_cli.storage.pg_deliveries import EventWakeups, open_outbox
from easyflow_cli.storage.pg_store import PgStore

log = logging.getLogger("easyflow.coordinator")

# Registers a descriptor with the coordinator's selector, and what to do when it is readable.
Watch = Callable[[int, Callable[[], None]], None]


class Duties:
    def __init__(self, store: PgStore, config: Config, cluster: ClusterConfig,
                 clock: Clock) -> None:
        self.store = store  # the coordinator's own: its settlements' ends
        self.config = config
        self.cluster = cluster
        self.clock = clock
        url = cluster.database_url
        self.forecasts = ForecastFiles(config, monotonic=clock.monotonic, in_background=True)
        self.deliveries = ClusterDeliveries(functools.partial(open_outbox, url), clock,
                                            self._book(), config)
        self.pruning = HistoryPruning(functools.partial(PgStore, url), config, clock)
        self.metrics = self._metrics_exporter()
        self.events: EventWakeups | None = None
        self.serving = False  # what the metrics' live state reports

    def start(self, watch: Watch) -> None:
        self.store.queue.notices = self.deliveries.book
        self.store.queue.pricing = self.forecasts
        self.events = EventWakeups(self.cluster.database_url)
        watch(self.events.fileno(), self._events_arrived)
        self.deliveries.start()
        self.pruning.start()
        self.serving = True
        self.metrics.start()

    def woke(self) -> None:
        """The coordinator woke: runs may have been queued (and may become late) or ended."""
        self.deliveries.runs_queued()
        self.pruning.look_again(self.clock.now())
        self.metrics.quiet()

    def reload(self, config: Config, cluster: ClusterConfig) -> None:
        self.config = self.deliveries.config = self.pruning.config = config
        self.cluster = cluster
        self.forecasts.reload(config)
        self.store.queue.notices = self.deliveries.book = self._book()
        self.deliveries.wake()
        self.pruning.look_now(self.clock.now())
        if config.metrics != self.metrics.config:
            self.metrics.stop()
            self.metrics = self._metrics_exporter()
            self.metrics.start()

    def stop(self) -> None:
        self.serving = False  # the metrics' last textfile says the coordinator is down
        self.deliveries.stop()
        self.pruning.stop()
        self.metrics.stop()
        if self.events is not None:
            self.events.close()

    def _events_arrived(self) -> None:
        assert self.events is not None
        if self.events.arrived():
            self.deliveries.wake()

    def _book(self) -> NoticeBook:
        return notice_book(self.config, self.store.all_workflows())

    def _metrics_exporter(self) -> MetricsExporter:
        collector = EasyflowCollector(functools.partial(PgStore, self.cluster.database_url),
                                      lambda: self.config, self._live, SettledTotals().read)
        return MetricsExporter(self.config.metrics, registry_of(collector))

    def _live(self, store: Backend) -> LiveState | None:
        """The workers' slots, read from a scrape's thread."""
        if not self.serving or store.cluster is None:
            return None
        return cluster_state(store.cluster, self.clock.now(), self.cluster.lease)
