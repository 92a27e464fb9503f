"""`easyflow metrics`: the Prometheus metrics, as the daemon serves them, printed once."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from easyflow_cli.core.cluster_config import ClusterConfig
    from easyflow_cli.reporting.metrics import EasyflowCollector, LiveState
    from easyflow_cli.storage.backend import Backend


def metrics() -> None:
    """Print the current metrics in the Prometheus text format.

    Counters and the queue come from the database; the pool workers from the daemon, if it
    answers (`easyflow_daemon_up` says whether it did). On a cluster, from its PostgreSQL
    database: the coordinator and its workers' slots as `status` shows them.
    """
    from prometheus_client import generate_latest

    from easyflow_cli.cli.common import configured_cluster
    from easyflow_cli.reporting.metrics import registry_of

    cluster = configured_cluster()
    collector = _local_collector() if cluster is None else _cluster_collector(cluster)
    sys.stdout.buffer.write(generate_latest(registry_of(collector)))
    sys.stdout.flush()


def _local_collector() -> EasyflowCollector:
    from easyflow_cli.core.config import load_config
    from easyflow_cli.core.paths import database_path, ensure_state_dir, state_dir
    from easyflow_cli.reporting.metrics import EasyflowCollector
    from easyflow_cli.storage.store import Store

    config = load_config()
    database = database_path(ensure_state_dir(state_dir()))
    return EasyflowCollector(lambda: Store(database), lambda: config, _live_state)


def _cluster_collector(cluster: ClusterConfig) -> EasyflowCollector:
    from easyflow_cli.core.config import load_config
    from easyflow_cli.reporting.metrics import EasyflowCollector, cluster_live
    from easyflow_cli.storage.pg_store import PgStore

    config = load_config()
    return EasyflowCollector(lambda: PgStore(cluster.database_url), lambda: config,
                             cluster_live(cluster.lease))


def _live_state(store: Backend) -> LiveState | None:
    """The daemon's pools, as its status reply gives them; None when it does not answer."""
    from easyflow_cli.reporting.metrics import LiveState
    from easyflow_cli.runtime.client import daemon_status

    reply = daemon_status()
    if reply is None:
        return None
    # A daemon started before the upgrade counts no states: it answers, its workers are unknown.
    return LiveState({pool: status["states"] for pool, status in reply["pools"].items()
                      if "states" in status})
