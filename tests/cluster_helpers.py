"""Dispatches made by hand, as the coordinator will make them: queued runs claimed and given a
dispatch token through SQL, for the tests of the worker's side of a cluster."""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from datetime import datetime

from easyflow_cli.core.model import CostPriority, Mode, ModeReason, PoolName, Trigger
from easyflow_cli.core.planning import PlannedRun
from easyflow_cli.storage.cluster_queue import Dispatch


def queue_runs(store, workflow: str, count: int, now: datetime,
               mode: Mode = Mode.REAL_TIME) -> list[int]:
    planned = PlannedRun(workflow, Trigger.MANUAL, mode, ModeReason.MANUAL,
                         CostPriority.NORMAL, None, now)
    return list(store.queue.enqueue([planned] * count))


def dispatch_by_hand(store, run_ids: Sequence[int], now: datetime,
                     mode: Mode = Mode.REAL_TIME) -> Dispatch:
    """queued → running with a new dispatch token and no worker, as `dispatch` leaves them."""
    token = secrets.token_hex(8)
    store.conn.execute(
        "UPDATE runs SET state = 'running', claimed_at = %s, pool = %s, dispatch_token = %s,"
        " dispatched_at = %s WHERE id = ANY(%s) AND state = 'queued'",
        (now, mode.value, token, now, list(run_ids)))
    return Dispatch(token, mode, PoolName.of(mode), tuple(run_ids))
