"""`easyflow status` on a cluster: the coordinator (whoever holds its lock), the workers that
registered (their pool, slots, heartbeat and what they run), and what the database tells of
the queue, the next fires and the runs running now, as on one box."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from easyflow_cli.cli.common import open_store
from easyflow_cli.cli.output import console, print_csv, print_json, render_rows, short_time
from easyflow_cli.cli.status_lines import held_by_limit, print_queue, print_running
from easyflow_cli.core.cluster_config import masked
from easyflow_cli.core.timeutil import to_iso, utcnow

if TYPE_CHECKING:
    from easyflow_cli.core.cluster_config import ClusterConfig
    from easyflow_cli.storage.backend import Backend, Cluster, Coordinator, WorkerState

WORKER_COLUMNS = ["name", "host", "pool", "concurrency", "running", "heartbeat_age_s", "alive"]


def cluster_status(config: ClusterConfig, *, as_json: bool, as_csv: bool) -> bool:
    """Print the cluster's status; whether a coordinator runs."""
    from easyflow_cli.reporting.running import RUNNING_COLUMNS

    with open_store() as store:
        assert store.cluster is not None  # opened by the configuration that named a cluster
        live = cluster_document(store, store.cluster, config, utcnow())
    live["held_by_limit"] = held_by_limit()
    if as_json:
        print_json(live)
    elif as_csv:
        print_csv(live["running"], RUNNING_COLUMNS)
    else:
        print_cluster(live)
    return live["coordinator"] is not None


def cluster_document(store: Backend, cluster: Cluster, config: ClusterConfig,
                     now: datetime) -> dict[str, Any]:
    """What `status --json` says of a cluster: the keys of one box's status, and its
    coordinator and workers."""
    from easyflow_cli.reporting.running import running_now

    coordinator = cluster.coordinator()
    workers = cluster.worker_states(now=now, lease=config.lease)
    return {"pid": coordinator.pid if coordinator else None,
            "since": to_iso(coordinator.since) if coordinator else None,
            "state": "running" if coordinator else "stopped",
            "database": masked(config.database_url),
            "coordinator": _coordinator_json(coordinator), "pools": _pools(workers),
            "workers": [worker.as_json() for worker in workers],
            "queue": store.queue.depths(), "next_fires": store.upcoming_schedules(5),
            "running": running_now(store.queue, now)}


def _coordinator_json(coordinator: Coordinator | None) -> dict[str, Any] | None:
    if coordinator is None:
        return None
    return {"pid": coordinator.pid, "client": coordinator.client,
            "application": coordinator.application, "since": to_iso(coordinator.since)}


def _pools(workers: list[WorkerState]) -> dict[str, dict[str, int]]:
    """Per pool, the slots of its workers alive and the runs they run."""
    pools: dict[str, dict[str, int]] = {}
    for worker in workers:
        if worker.alive:
            pool = pools.setdefault(worker.pool, {"size": 0, "busy": 0})
            pool["size"] += worker.concurrency
            pool["busy"] += worker.running
    return pools


def print_cluster(live: dict[str, Any]) -> None:
    coordinator = live["coordinator"]
    if coordinator:
        where = f" at {coordinator['client']}" if coordinator["client"] else ""
        console.print(f"coordinator [green]running[/] (pid {coordinator['pid']}{where}, since "
                      f"{short_time(coordinator['since'])}), database {live['database']}",
                      highlight=False)
    else:
        console.print(f"coordinator [red]not running[/] (database {live['database']}): queued "
                      "runs wait until one starts", highlight=False)
    if live["workers"]:
        render_rows(live["workers"], WORKER_COLUMNS, as_json=False, as_csv=False,
                    title="workers", formatters={"heartbeat_age_s": _age})
    else:
        console.print("  workers: none registered")
    print_queue(live, daemon_up=bool(coordinator))
    print_running(live["running"])


def _age(seconds: float) -> str:
    return f"{seconds:.1f}s ago"
