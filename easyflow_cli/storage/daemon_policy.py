"""The policy the running daemon plans with, published in the database for the clients that
queue runs: a run is planned once, by whoever queues it, so a client plans by the daemon's
off-peak window, promotion margin and eco planning (what it optimises, its longest delay, the
forecast file) rather than by whatever config it loaded itself.

One row, written when the daemon starts and when it reloads its configuration. A row left by
a daemon that died is harmless: clients read it only while a daemon answers on the socket, and
the next daemon writes its own before it serves.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

from easyflow_cli.core.config import Config, Optimise
from easyflow_cli.core.eco_plan import DEFAULT_MAX_DELAY
from easyflow_cli.core.offpeak import parse_window
from easyflow_cli.core.plan_series import planning_policy
from easyflow_cli.core.planning import QueuePolicy
from easyflow_cli.core.timeutil import to_iso
from easyflow_cli.storage.sqlite_queue import Database

# The columns of the daemon_policy row after its id and published_at, in this order.
POLICY_COLUMNS = ("promote_within_s", "off_peak", "optimise", "max_delay_s", "series_path")


def publish_policy(store: Database, policy: QueuePolicy, now: datetime) -> None:
    with store.write():
        store.conn.execute(
            f"INSERT OR REPLACE INTO daemon_policy (id, published_at, {', '.join(POLICY_COLUMNS)})"
            " VALUES (1, ?, ?, ?, ?, ?, ?)", (to_iso(now), *policy_values(policy)))


def published_policy(store: Database, config: Config | None = None) -> QueuePolicy | None:
    """The last policy a daemon published, if one ever did; with `config` (for the eco pool's
    prices), with its forecast read from the file the daemon named."""
    row = store.conn.execute(
        f"SELECT {', '.join(POLICY_COLUMNS)} FROM daemon_policy").fetchone()
    return None if row is None else policy_of_row(row, config)


def policy_values(policy: QueuePolicy) -> tuple:
    """The policy as the values of POLICY_COLUMNS."""
    window = policy.off_peak
    return (policy.promote_within.total_seconds(), None if window is None else window.text(),
            policy.optimise.value, policy.max_delay.total_seconds(),
            None if policy.series_path is None else str(policy.series_path))


def policy_of_row(row: tuple, config: Config | None) -> QueuePolicy:
    promote_within, window = timedelta(seconds=row[0]), parse_window(row[1] or "")
    optimise = Optimise(row[2] or Optimise.OFF_PEAK.value)
    max_delay = DEFAULT_MAX_DELAY if row[3] is None else timedelta(seconds=row[3])
    path = None if row[4] is None else Path(row[4])
    if config is None:
        return QueuePolicy(promote_within, window, optimise, max_delay, series_path=path)
    return planning_policy(config, promote_within, window, optimise, max_delay, path)
