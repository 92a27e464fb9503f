"""`easyflow worker --pool MODE`: a Celery worker of a cluster, on any machine, that executes the
runs the coordinator dispatches to its pool's queue.

Celery's prefork pool runs `--concurrency` processes, each executing one dispatch at a time
(execution.py); the main process keeps the worker registered and alive in PostgreSQL
(heartbeat.py). The whole worker runs at its pool's niceness, so an eco worker's runs get the
idle CPU and I/O class as a local eco worker's do. The worker's name is unique across the
cluster: `host:pid` unless `--name` gives one (a worker restarted under the same name takes
over its row).
"""

from __future__ import annotations

import logging
import os
import socket
from dataclasses import dataclass

from celery.signals import worker_process_init

from easyflow_cli.core.cluster_config import BROKER_ENV, ClusterConfig
from easyflow_cli.core.config import Config
from easyflow_cli.core.errors import BadInput
from easyflow_cli.core.model import PoolName
from easyflow_cli.core.timeutil import utcnow
from easyflow_cli.runtime.cluster.engine import TASK_NAME, make_app, queue_name
from easyflow_cli.runtime.cluster.execution import PoolProcess, WorkerIdentity
from easyflow_cli.runtime.cluster.heartbeat import Heartbeat
from easyflow_cli.runtime.processes import lower_priority
from easyflow_cli.runtime.run_marker import new_token
from easyflow_cli.storage.cluster_queue import WorkerInfo

log = logging.getLogger("easyflow.worker")

# Celery's own lines about each message: easyflow logs each run's end instead.
CELERY_TASK_LOGGERS = ("celery.app.trace", "celery.worker.strategy")


@dataclass(frozen=True)
class WorkerOptions:
    pool: PoolName
    concurrency: int
    name: str | None = None


def serve(config: Config, options: WorkerOptions) -> int:
    """Run the worker until Celery stops it (SIGTERM: after its runs end); its exit code."""
    cluster = _cluster(config)
    assert cluster.broker_url is not None, "checked by _cluster"
    identity = _identity(options.name)
    lower_priority(config.pool(options.pool.value).nice)
    process = PoolProcess(cluster.database_url, config, identity)
    app = make_app(cluster.broker_url)

    @app.task(name=TASK_NAME)
    def execute(**kwargs: object) -> None:
        process.execute(kwargs)

    worker_process_init.connect(lambda **_: process.start(), weak=False)
    if not log.isEnabledFor(logging.DEBUG):  # a line per message received and done, twice
        for chatty in CELERY_TASK_LOGGERS:
            logging.getLogger(chatty).setLevel(logging.WARNING)
    now = utcnow()
    info = WorkerInfo(identity.name, identity.host, options.pool, options.concurrency,
                      os.getpid(), now, now)
    with Heartbeat(cluster.database_url, info, identity, cluster.lease, config):
        log.info("worker %s: pool %s, %d processes, queue %s", identity.name,
                 options.pool.value, options.concurrency, queue_name(options.pool))
        controller = app.Worker(
            hostname=f"easyflow@{identity.name}", queues=[queue_name(options.pool)],
            concurrency=options.concurrency, pool="prefork", quiet=True,
            without_mingle=True, without_gossip=True, without_heartbeat=True,
            loglevel=logging.getLogger().getEffectiveLevel())
        controller.start()
    return controller.exitcode or 0


def _cluster(config: Config) -> ClusterConfig:
    if config.cluster is None:
        raise BadInput(f"{config.source}: a worker needs a cluster: set [cluster] database_url "
                       "and broker_url, or EASYFLOW_DATABASE_URL and EASYFLOW_BROKER_URL "
                       "(docs/cluster.md)")
    if config.cluster.broker_url is None:
        raise BadInput(f"{config.source}: a worker needs a broker: set [cluster] broker_url, "
                       f"or {BROKER_ENV} (docs/cluster.md)")
    return config.cluster


def _identity(name: str | None) -> WorkerIdentity:
    host = socket.gethostname()
    return WorkerIdentity(name or f"{host}:{os.getpid()}", host, new_token())
