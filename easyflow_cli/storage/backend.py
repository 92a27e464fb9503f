"""What the commands use of a store, whichever database holds it: the embedded SQLite `Store`
(`store.py`) or, with a `[cluster]`, the PostgreSQL `PgStore` (`pg_store.py`). Both satisfy
`Backend`; `cluster` tells them apart, and carries what only a cluster has (runs executed on
other machines: their logs in the database, a cancel sent to their worker, the coordinator
and the workers of `status`).

Types only: importing this module imports neither database's driver.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from easyflow_cli.core.config import Config
    from easyflow_cli.core.planning import QueuePolicy
    from easyflow_cli.core.spec import ScheduleSpec, WorkflowSpec
    from easyflow_cli.storage.dialect import Args, Dialect
    from easyflow_cli.storage.outbox import Outbox
    from easyflow_cli.storage.run_queue import RunQueue


@dataclass(frozen=True, slots=True)
class Coordinator:
    """The session holding the coordinator's advisory lock, as PostgreSQL sees it."""

    pid: int
    client: str | None  # its address; None over a Unix socket
    application: str
    since: datetime | None  # when its connection began


@dataclass(frozen=True, slots=True)
class WorkerState:
    """A registered worker, and what it runs now."""

    name: str
    host: str
    pool: str
    concurrency: int
    heartbeat_age_s: float
    running: int
    alive: bool  # heartbeat within the lease, and not stopped
    stopped: bool

    def as_json(self) -> dict[str, Any]:
        return {"name": self.name, "host": self.host, "pool": self.pool,
                "concurrency": self.concurrency, "heartbeat_age_s": round(self.heartbeat_age_s, 3),
                "running": self.running, "alive": self.alive, "stopped": self.stopped}


class Cluster(Protocol):
    """What a cluster adds for the commands: runs live on other machines."""

    def coordinator(self) -> Coordinator | None:
        """Who holds the coordinator's lock (None: no coordinator runs)."""
        ...

    def worker_states(self, *, now: datetime, lease: float) -> list[WorkerState]:
        """Every registered worker, newest heartbeat first."""
        ...

    def request_cancel(self, run_ids: Sequence[int], *, now: datetime) -> list[int]:
        """Ask the workers running these runs to stop them; the ids asked."""
        ...

    def log_chunks(self, run_id: int, *, after: int = -1) -> list[tuple[int, bytes]]:
        """The run's log chunks numbered above `after`, in order."""
        ...


class Backend(Protocol):
    """An open store. Use as a context manager, or call `close()`."""

    queue: RunQueue
    outbox: Outbox
    conn: Any
    # The reports' SQL: what it spells differently on this database, and how it is read
    # (`dialect.ReportStore`).
    dialect: Dialect

    def read(self, sql: str, args: Args = ()) -> Any: ...

    @property
    def cluster(self) -> Cluster | None:
        """None on one box; what a cluster adds, on PostgreSQL."""
        ...

    def __enter__(self) -> Backend: ...

    def __exit__(self, *exc: object) -> None: ...

    def close(self) -> None: ...

    def write(self) -> AbstractContextManager[Any]:
        """A transaction; nested, it joins the outer one."""
        ...

    def published_policy(self, config: Config | None = None) -> QueuePolicy | None: ...

    # ------------------------------------------------------------------ workflows

    def save_workflows(self, specs: list[WorkflowSpec], now: datetime) -> None: ...

    def get_workflow(self, name: str) -> WorkflowSpec: ...

    def workflow_spec_dict(self, name: str) -> tuple[dict[str, Any], str | None]: ...

    def workflow_rows(self) -> list[dict[str, Any]]: ...

    def all_workflows(self) -> list[WorkflowSpec]: ...

    def keep_runs(self) -> dict[str, int]: ...

    def set_workflow_disabled(self, name: str, disabled: bool) -> None: ...

    def workflow_disabled(self, name: str) -> bool: ...

    def remove_workflow(self, name: str, now: datetime) -> int: ...

    # ------------------------------------------------------------------ schedules

    def insert_schedule(self, workflow: str, schedule: ScheduleSpec, *, origin: str,
                        now_iso: str) -> int: ...

    def update_schedule(self, schedule_id: int, schedule: ScheduleSpec) -> None: ...

    def get_schedule(self, schedule_id: int) -> dict[str, Any]: ...

    def delete_schedule(self, schedule_id: int) -> None: ...

    def set_schedule_state(self, schedule_id: int, *, paused: bool,
                           next_fire_at: str | None) -> None: ...

    def record_schedule_fire(self, schedule_id: int, *, fired_at: str | None,
                             next_fire_at: str | None) -> None: ...

    def reanchor_schedule(self, schedule_id: int, *, created_at: str,
                          next_fire_at: str) -> None: ...

    def pending_schedules(self, kind: str) -> list[dict[str, Any]]: ...

    def unplanned_schedules(self) -> list[dict[str, Any]]: ...

    def due_schedules(self, now_iso: str) -> list[dict[str, Any]]: ...

    def upcoming_schedules(self, limit: int) -> list[dict[str, Any]]: ...

    def schedule_specs(self, workflow: str) -> list[ScheduleSpec]: ...

    def schedule_rows(self, workflow: str | None = None) -> list[dict[str, Any]]: ...

