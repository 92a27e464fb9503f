"""Small helpers the command modules share: opening the store, parsing CLI values."""

from __future__ import annotations

import os
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from easyflow_cli.core.durations import looks_like_duration, parse_duration
from easyflow_cli.core.errors import BadInput, shown
from easyflow_cli.core.timeutil import parse_time

if TYPE_CHECKING:
    from easyflow_cli.core.cluster_config import ClusterConfig
    from easyflow_cli.storage.backend import Backend


def open_store() -> Backend:
    """The store the configuration names: the cluster's PostgreSQL database, else the SQLite
    database in the state directory."""
    cluster = configured_cluster()
    if cluster is not None:
        from easyflow_cli.storage.pg_store import PgStore

        return PgStore(cluster.database_url)
    # Imported here, not at the top: `easyflow --help` must not pay for the store's imports.
    from easyflow_cli.storage.store import Store

    return Store.open()


def configured_cluster() -> ClusterConfig | None:
    """The `[cluster]` of the configuration (or `EASYFLOW_DATABASE_URL`), None on one box.

    A config file that does not mention a cluster is not parsed: commands that never needed
    the configuration do not start to pay for it (or fail on a mistake elsewhere in it)."""
    from easyflow_cli.core.cluster_config import DATABASE_ENV
    from easyflow_cli.core.config import find_config_path, load_config

    if not os.environ.get(DATABASE_ENV):
        path = find_config_path()
        try:
            if path is None or b"cluster" not in path.read_bytes():
                return None
        except OSError:
            return None  # unreadable: the commands that read the config say so
    return load_config().cluster


def check_workflow(store: Backend, workflow: str | None) -> None:
    """A registered workflow, or one that has since been removed but has runs to show; else
    NotFound (exit 2), as for every unknown name."""
    from easyflow_cli.reporting.accounting import has_history

    if not workflow or store.queue.latest(workflow=workflow, limit=1):
        return
    # Pruned runs count too: their rollups (read by the reports' SQL, SQLite's for now).
    if store.cluster is None and has_history(store, workflow):
        return
    store.get_workflow(workflow)


def parse_deadline(text: str, now: datetime, option: str = "--deadline") -> datetime:
    """A duration from now (`30m`) or an ISO-8601 time (`2026-12-01T09:00`, local if no offset)."""
    if looks_like_duration(text):
        try:
            return now + timedelta(seconds=parse_duration(text))
        except ValueError as exc:
            raise BadInput(f"{option}: {exc}") from None
    try:
        return parse_time(text)
    except ValueError:
        raise BadInput(f"{option}: {shown(text)} is neither a duration like '30m' nor an ISO-8601 "
                       "time like 2026-12-01T09:00") from None
