"""Which machine ran a run: the host a cluster's worker records on it (`runs.host`); in an
embedded database, which records none, this machine, where the daemon or a terminal ran it."""

from __future__ import annotations

import socket

from easyflow_cli.core.model import Run
from easyflow_cli.storage.dialect import ReportStore
from easyflow_cli.storage.store import Store


def local_host() -> str:
    return socket.gethostname()


def run_host(store: ReportStore, run: Run) -> str | None:
    """Where the run ran: None until a worker took it (or where none recorded itself)."""
    if run.claimed_at is None and run.started_at is None:
        return None
    if isinstance(store, Store):
        return local_host()
    row = store.read("SELECT host FROM runs WHERE id = ?", (run.id,)).fetchone()
    return None if row is None else row[0]
