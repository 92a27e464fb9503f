"""The Prometheus metrics, as one prometheus-client collector read at each scrape.

Counters come from the database (`run_totals`: counts, histograms, and the sums `report
costs` prices, priced the same way), so they survive daemon restarts and agree with the
reports; the queue depth is read there too. What only a running daemon knows, its pool workers
by state, comes from `live`: the daemon's own pools when it serves the metrics, its status
reply when `easyflow metrics` asks it, nothing when no daemon answers (then
`easyflow_daemon_up` is 0). On a cluster the database is PostgreSQL and the live state is
read there too (`cluster_state`): the coordinator that holds the lock, the workers' slots.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector, CollectorRegistry

from easyflow_cli.core.config import Config
from easyflow_cli.core.costs import Prices
from easyflow_cli.core.model import Mode
from easyflow_cli.core.timeutil import utcnow
from easyflow_cli.reporting.reports import cost_report
from easyflow_cli.reporting.run_totals import Histogram, RunTotals, run_totals
from easyflow_cli.storage.backend import Backend, Cluster

WH_TO_J = 3600.0


@dataclass(frozen=True)
class LiveState:
    """What a running daemon knows and the database does not: per pool, workers by state."""

    pools: dict[str, dict[str, int]]


@dataclass(frozen=True)
class Snapshot:
    """Everything one scrape reports, read in one go."""

    totals: RunTotals
    costs: dict[str, Any]  # the `report costs` dict over all history, by mode
    depths: dict[str, int]
    live: LiveState | None
    notifications_failed: dict[str, int]  # by channel


# What a scrape knows live, read with the scrape's own store.
Live = Callable[[Backend], LiveState | None]


class EasyflowCollector(Collector):
    """Reads the database (a connection of its own per scrape, `open_store`, so any thread may
    scrape) and the live state, and yields the metric families. Scrapes take turns: several at
    once would only multiply the same reads."""

    def __init__(self, open_store: Callable[[], Backend], config: Callable[[], Config],
                 live: Live, totals: Callable[[Backend], RunTotals] = run_totals) -> None:
        self.open_store = open_store
        self.config = config
        self.live = live
        self.totals = totals  # the daemon keeps what settled runs add up (`SettledTotals`)
        self.lock = threading.Lock()

    def collect(self) -> Iterator[Metric]:
        with self.lock:
            snapshot = self.snapshot()
        return iter(families(snapshot))

    def snapshot(self) -> Snapshot:
        config = self.config()
        with self.open_store() as store:
            totals = self.totals(store)
            depths = {mode.value: n for mode, n in store.queue.depths().items()}
            failed = store.outbox.failed_by_channel()
            live = self.live(store)
        costs = cost_report(totals.cost_rows(), Prices.from_config(config),
                            config.costs.watts_per_core, "mode",
                            {"since": None, "until": None, "workflow": None})
        return Snapshot(totals, costs, depths, live, failed)


def cluster_live(lease: float, now: Callable[[], datetime] = utcnow) -> Live:
    """The live state of the cluster whose database a scrape's store is."""
    def live(store: Backend) -> LiveState | None:
        cluster = store.cluster
        assert cluster is not None, "a cluster's live state read from a store of one box"
        return cluster_state(cluster, now(), lease)
    return live


def cluster_state(cluster: Cluster, now: datetime, lease: float) -> LiveState | None:
    """A cluster's live state: None when no coordinator holds the lock (the daemon is down);
    else per pool the slots of its live workers, `busy` those running a run, `idle` the rest."""
    if cluster.coordinator() is None:
        return None
    # A worker's slots start and retire with its process: only these two states apply.
    pools = {mode.value: {"idle": 0, "busy": 0} for mode in Mode}
    for worker in cluster.worker_states(now=now, lease=lease):
        if worker.alive and worker.pool in pools:
            busy = min(worker.running, worker.concurrency)
            pools[worker.pool]["busy"] += busy
            pools[worker.pool]["idle"] += worker.concurrency - busy
    return LiveState(pools)


def registry_of(collector: Collector) -> CollectorRegistry:
    """A registry holding only our collector (not the process-wide default one)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(collector)
    return registry


def families(snapshot: Snapshot) -> list[Metric]:
    return [_daemon_up(snapshot.live), _runs(snapshot.totals),
            _histogram("easyflow_run_duration_seconds",
                       "How long runs that occupied a worker took, by mode.",
                       snapshot.totals.durations),
            _histogram("easyflow_queue_wait_seconds",
                       "How long runs waited in the queue before they started, by mode.",
                       snapshot.totals.waits),
            _queue_depth(snapshot.depths), *_pool_workers(snapshot.live),
            *_money_and_energy(snapshot.costs),
            _notifications_failed(snapshot.notifications_failed)]


def _notifications_failed(by_channel: dict[str, int]) -> Metric:
    family = CounterMetricFamily("easyflow_notifications_failed",
                                 "Notifications given up after their last delivery try.",
                                 labels=["channel"])
    for channel in ("command", "webhook", "email"):
        family.add_metric([channel], by_channel.get(channel, 0))
    return family


def _daemon_up(live: LiveState | None) -> Metric:
    return GaugeMetricFamily("easyflow_daemon_up", "1 if the daemon is running and answers.",
                             value=0 if live is None else 1)


def _runs(totals: RunTotals) -> Metric:
    family = CounterMetricFamily("easyflow_runs_total", "Runs that ended, by final state.",
                                 labels=["workflow", "mode", "state"])
    for (workflow, mode, state), count in sorted(totals.runs.items()):
        family.add_metric([workflow, mode, state], count)
    return family


def _histogram(name: str, documentation: str, by_mode: dict[str, Histogram]) -> Metric:
    family = HistogramMetricFamily(name, documentation, labels=["mode"])
    for mode in Mode:
        histogram = by_mode.get(mode.value)
        if histogram is None:
            continue
        buckets = [(repr(bound), count)
                   for bound, count in zip(histogram.bounds, histogram.cumulative, strict=True)]
        family.add_metric([mode.value], [*buckets, ("+Inf", histogram.count)], histogram.total)
    return family


def _queue_depth(depths: dict[str, int]) -> Metric:
    family = GaugeMetricFamily("easyflow_queue_depth", "Runs waiting in the queue, by mode.",
                               labels=["mode"])
    for mode in Mode:
        family.add_metric([mode.value], depths.get(mode.value, 0))
    return family


def _pool_workers(live: LiveState | None) -> list[Metric]:
    if live is None:
        return []  # no daemon, no workers: an absent series, not a made-up zero
    family = GaugeMetricFamily("easyflow_pool_workers", "The daemon's pool workers, by state.",
                               labels=["pool", "state"])
    for pool, states in live.pools.items():
        for state, count in states.items():
            family.add_metric([pool, state], count)
    return [family]


def _money_and_energy(costs: dict[str, Any]) -> list[Metric]:
    currency = costs["currency"]
    cost = CounterMetricFamily(
        "easyflow_cost_dollars_total",
        f"What runs cost at the configured prices ({currency}), by mode.", labels=["mode"])
    energy = CounterMetricFamily("easyflow_energy_joules_total",
                                 "Energy runs used (measured, else estimated), by mode.",
                                 labels=["mode"])
    for mode, totals in costs["by_mode"].items():
        cost.add_metric([mode], totals["cost"])
        energy.add_metric([mode], totals["energy_wh"] * WH_TO_J)
    savings = CounterMetricFamily(
        "easyflow_savings_dollars_total",
        f"What runs saved against the same runs as real-time at peak price ({currency}).",
        value=costs["savings"])
    return [cost, savings, energy]
