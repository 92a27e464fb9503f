"""What a cluster adds to the run queue: dispatches that carry claimed runs to remote workers,
the workers that take them, and what crosses machines (cancels, logs). PostgreSQL only.

A run's life in a cluster uses the same states as on one box; only who holds it changes:

```
queued ──dispatch──▶ running, worker NULL, dispatch_token T   (the coordinator; a Celery
                     message carries T to the pool's queue)
running, worker NULL ──accept(T)──▶ running, worker W, host H  (the worker that got T)
running, worker NULL, dispatched over dispatch_timeout ago ──settle_abandoned──▶ queued
running, worker W whose heartbeat is older than lease ──settle_abandoned──▶ failed (+ retry)
queued, or running with worker NULL ──cancel──▶ cancelled, dispatch_token NULL  (`runs cancel`)
running, worker W ──request_cancel──▶ running, cancel_requested_at set ──W stops it──▶ cancelled
running, cancel_requested_at set, nobody holds it ──settle_abandoned──▶ cancelled (no retry)
```

`settle_abandoned` keeps its one rule: a run that never started goes back in line (nothing of
it ran), a started one failed; but a run whose cancel was asked ends cancelled, started or not:
a cancel holds whatever comes late. A dispatch no worker accepted yet holds no process
anywhere, so `cancel` ends it at once, as a queued run; its token goes with it, and its Celery
message, delivered later, is dropped. A message delivered twice, or after its dispatch
expired, finds its token no longer on the run and is dropped: `accept` is the only way to a
run's worker. A run a worker finishes after its cancel was asked gets no retry. Everything
after `accept` (`start`, `record_step`, `finish`) is `RunQueue`'s as on one box.

The coordinator's side is implemented by `pg_dispatch.py`, the worker's by `pg_workers.py`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from easyflow_cli.core.model import Mode, PoolName, Run
from easyflow_cli.core.spec import WorkflowSpec

# The advisory lock the active coordinator holds for as long as its connection lives; a
# standby blocks on it. Its first key says "easyflow", its second the schema: two installations
# sharing one database in two schemas have a coordinator each.
COORDINATOR_LOCK = 0x65617379  # "easy"
LOCK_COORDINATOR_SQL = "SELECT pg_advisory_lock(%s, hashtext(current_schema()))"
TRY_LOCK_COORDINATOR_SQL = "SELECT pg_try_advisory_lock(%s, hashtext(current_schema()))"
# The PostgreSQL backend pid of the session holding this schema's coordinator lock, if any.
COORDINATOR_HOLDER_SQL = (
    "SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted AND objsubid = 2"
    " AND classid = %s AND objid = hashtext(current_schema())::oid"
    " AND database = (SELECT oid FROM pg_database WHERE datname = current_database())")
# Channel a cancel is announced on (payload: the run id), for the worker that runs it.
CANCEL_CHANNEL = "easyflow_cancel"


@dataclass(frozen=True, slots=True)
class Dispatch:
    """Claimed runs sent to a pool's workers in one message: a run, or an eco batch."""

    token: str
    mode: Mode
    pool: PoolName
    run_ids: tuple[int, ...]
    batch_id: str | None = None


@dataclass(frozen=True, slots=True)
class StartAtAccept:
    """What `RunQueue.start` sets beyond the time and the pid, for runs started on accept."""

    off_peak: bool | None = None


@dataclass(frozen=True, slots=True)
class Accepted:
    """A run as its accept left it, with what its process needs before its first step: whether
    its cancel was asked, and its workflow (None: removed)."""

    run: Run
    cancel_asked: bool
    spec: WorkflowSpec | None


@dataclass(frozen=True, slots=True)
class Rooms:
    """What the coordinator reads of the queue and the workers at each wake-up, in one query:
    each pool's free slots, the modes with a run ready now, whether any workflow sets a
    `max_concurrent`, and the next promotion."""

    free: dict[Mode, int]
    ready: frozenset[Mode]
    limited: bool
    next_promotion: datetime | None


@dataclass(frozen=True, slots=True)
class WorkerInfo:
    """A registered worker (a row of `workers`): its name is unique across the cluster."""

    name: str
    host: str
    pool: PoolName
    concurrency: int
    pid: int
    started_at: datetime
    heartbeat_at: datetime
    stopped_at: datetime | None = None


class CoordinatorQueue(Protocol):
    """The coordinator's transitions (`pg_dispatch.PgDispatch`)."""

    def free_slots(self, pool: PoolName, *, now: datetime, lease: float) -> int:
        """The pool's room: the concurrency of its workers alive (heartbeat within `lease`,
        not stopped) less its runs running or dispatched."""
        ...

    def rooms(self, *, now: datetime, lease: float) -> Rooms:
        """The pools' room (as `free_slots`) and the queue's readiness, at once."""
        ...

    def dispatch(self, mode: Mode, *, now: datetime, pool: PoolName, slots: int,
                 batch: bool, limited: bool = True) -> list[Dispatch]:
        """Claim up to `slots` ready runs of `mode` in the queue's order, as `claim` does
        (`max_concurrent` counted over running and dispatched runs); one dispatch per run, or
        one per batch when `batch` (eco). `limited=False` says no workflow sets a
        `max_concurrent` (`Rooms.limited`): the claim then needs no count.

        queued → running; sets `claimed_at` (now), `pool`, `batch_id`, `dispatch_token`,
        `dispatched_at` (now); `worker` stays unset until a worker accepts it."""
        ...

    def expired_dispatches(self, *, now: datetime, timeout: float) -> list[int]:
        """Runs dispatched more than `timeout` seconds ago that no worker accepted (their
        message was lost, or no worker of the pool is left): for `settle_abandoned`, which puts
        them back in line and unsets `dispatch_token`, `dispatched_at`, `host`."""
        ...

    def lost_runs(self, *, now: datetime, lease: float) -> dict[str, list[int]]:
        """Running runs of workers whose heartbeat is older than `lease` (or that stopped),
        by worker: for `settle_abandoned`."""
        ...

    def workers(self) -> list[WorkerInfo]:
        """Every registered worker, newest heartbeat first (`status`, `report pools`)."""
        ...


class WorkerQueue(Protocol):
    """A worker's transitions (`pg_workers.PgWorkers`)."""

    def register(self, worker: WorkerInfo) -> None:
        """Add or replace the worker's row (a restarted worker keeps its name); its pool's
        room is announced (`WAKEUP_CHANNEL`), for the coordinator to dispatch into it at once."""
        ...

    def heartbeat(self, name: str, *, now: datetime) -> list[int]:
        """Sets the worker's `heartbeat_at`; its running runs whose cancel was asked."""
        ...

    def stop(self, name: str, *, now: datetime) -> None:
        """Sets the worker's `stopped_at`: it takes nothing more (a clean shutdown); its
        pool's room is announced, as at `register`."""
        ...

    def accept(self, dispatch_token: str, run_ids: Sequence[int], *, worker: str, host: str,
               pid: int, now: datetime, start: StartAtAccept | None = None) -> list[Run]:
        """Take the dispatched runs still carrying `dispatch_token` and not yet accepted; those
        taken (none when the message came twice or too late), as they are now.

        running, worker unset → running; sets `worker`, `host`, and `pid` (the process that
        runs them: the worker settles a run whose process died, see `holders`). With `start`,
        they are started too, as `RunQueue.start` starts them at `now`: a run executed at once
        is accepted and started in one statement."""
        ...

    def take(self, dispatch_token: str, run_ids: Sequence[int], *, worker: str, host: str,
             pid: int, now: datetime, start: StartAtAccept | None = None) -> list[Accepted]:
        """`accept`, each run with its cancel and its workflow as they were at the accept:
        what a process executing it at once would read next, in the same round trip."""
        ...

    def holders(self, name: str) -> dict[int, int | None]:
        """The worker's running runs, each with the pid of the process that accepted it."""
        ...

    def cancel_asked(self, run_id: int) -> bool:
        """Was the run's cancel asked (`request_cancel`)?"""
        ...

    def request_cancel(self, run_ids: Sequence[int], *, now: datetime) -> list[int]:
        """Ask the workers running these runs to stop them (a `NOTIFY` on CANCEL_CHANNEL);
        the ids asked. Queued runs, and dispatched ones no worker accepted yet, are cancelled
        by `RunQueue.cancel`.

        Sets `cancel_requested_at`."""
        ...

    def append_log(self, run_id: int, seq: int, data: bytes, *, now: datetime) -> None:
        """A chunk of a run's log, numbered from 0 by the worker that runs it."""
        ...

    def log_chunks(self, run_id: int, *, after: int = -1) -> list[tuple[int, bytes]]:
        """The run's log chunks numbered above `after`, in order."""
        ...
