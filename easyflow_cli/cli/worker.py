"""`easyflow worker`: a Celery worker of a cluster for one pool's queue (docs/cluster.md)."""

from __future__ import annotations

import sys
from pathlib import Path

import typer

from easyflow_cli.core.model import Mode


def worker(
    pool: Mode = typer.Option(..., "--pool", help="The pool whose queue it serves."),
    concurrency: int | None = typer.Option(
        None, "--concurrency", min=1,
        help="Runs executed at once (default: the pool's `workers` in the config)."),
    name: str | None = typer.Option(None, "--name",
                                    help="Its name, unique in the cluster (default: host:pid)."),
    config: Path | None = typer.Option(
        None, "--config", "-c",
        help="Config file (else $EASYFLOW_CONFIG, $EASYFLOW_HOME/easyflow.toml, "
             "/etc/easyflow/easyflow.toml)."),
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Log debug details."),
) -> None:
    """Execute the runs a cluster's coordinator dispatches to a pool, on this machine."""
    import logging

    from easyflow_cli.core.config import load_config
    from easyflow_cli.core.model import PoolName
    from easyflow_cli.runtime.cluster.worker import WorkerOptions, serve
    from easyflow_cli.runtime.sdnotify import JournalFormatter

    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JournalFormatter())
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO, handlers=[handler])
    loaded = load_config(config)
    options = WorkerOptions(PoolName.of(pool), concurrency or loaded.pool(pool).workers, name)
    raise typer.Exit(serve(loaded, options))
