"""The run queue in PostgreSQL: the `runs` table and its transitions, for several machines.

What each method changes is documented on `RunQueue`; here is only how. Where SQLite has one
writer at a time, PostgreSQL has many, so:

- a claim takes ready runs `FOR UPDATE SKIP LOCKED`: two claimers never wait on, nor take,
  the same run;
- a claim that must respect a `max_concurrent` first locks the limited workflows' rows, so
  two claimers never count the same free room;
- `enqueue` holds a lock while it takes ids, so each batch's ids are consecutive;
- a run that may have become ready (enqueued, put back, promoted), or a pool's slot that
  became free (a run finished), is announced on the `easyflow_runs` channel (`NOTIFY`, sent
  at commit, its payload the mode): `pg_wakeups.py` listens;
- a run dispatched to a worker that has not accepted it yet holds no process anywhere: `cancel`
  ends it as it ends a queued one, and `settle_abandoned` never puts a run whose cancel was
  asked back in line (see `cluster_queue.py`).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager
from datetime import datetime, timedelta, tzinfo
from typing import Any, Protocol

import psycopg
from psycopg.pq import TransactionStatus

from easyflow_cli.core.errors import DamagedRow, NotFound
from easyflow_cli.core.learned import RunSample
from easyflow_cli.core.model import (
    RUN_FIELDS,
    ClaimedRun,
    CostPriority,
    Mode,
    Outcome,
    PoolName,
    Run,
    RunState,
    StepGroup,
)
from easyflow_cli.core.notify import NoticeBook
from easyflow_cli.core.planning import PlannedRun
from easyflow_cli.core.receipts import Charges, Pricing, PricingSource
from easyflow_cli.core.stats import median
from easyflow_cli.storage.damaged_rows import ENUM_COLUMNS, KNOWN, MODES, damage
from easyflow_cli.storage.pg_outbox import record_end_events
from easyflow_cli.storage.pg_rollups import add_rollups, finished_rows
from easyflow_cli.storage.run_queue import (
    Hand,
    HeldByLimit,
    NextAttempt,
    PrunedRun,
    RunEnd,
    RunStart,
    charged_ends,
    deal,
    keep_within,
    no_retry,
    seconds_between,
)
from easyflow_cli.storage.sqlite_charges import CHARGE_COLUMNS

log = logging.getLogger("easyflow.queue")

WAKEUP_CHANNEL = "easyflow_runs"
IDLE = TransactionStatus.IDLE
BIGINT_MAX = 2**63 - 1
PLANNED_COLUMNS = ("workflow", "trigger", "mode", "mode_reason", "cost_priority",
                   "priority_rank", "deadline", "state", "enqueued_at", "not_before",
                   "promote_at", "attempt", "retry_of", "rerun_of", "schedule_id",
                   "not_before_reason", "followed")
INSERT_PLANNED = (f"INSERT INTO runs ({', '.join(PLANNED_COLUMNS)})"
                  f" VALUES ({', '.join('%s' for _ in PLANNED_COLUMNS)})")
# `enqueue` of one run outside a transaction: the lock `store.lock("enqueue")` takes (so that
# a batch queued meanwhile keeps consecutive ids) is taken before the row gets its id.
ENQUEUE_ONE = (
    "WITH locked AS (SELECT pg_advisory_xact_lock(hashtext(current_schema() || '.enqueue'))),"
    f" added AS (INSERT INTO runs ({', '.join(PLANNED_COLUMNS)})"
    f" SELECT {', '.join('%s' for _ in PLANNED_COLUMNS)} FROM locked RETURNING id, mode)"
    " SELECT id FROM added, pg_notify(%s, added.mode)")
CLAIMED_COLUMNS = "id, workflow, mode, cost_priority, deadline, enqueued_at"
CLAIMED_NAMES = tuple(CLAIMED_COLUMNS.split(", "))
PRIORITIES = KNOWN["cost_priority"]
SELECT_RUN = f"SELECT {', '.join(RUN_FIELDS)} FROM runs"
FINISHED = "state NOT IN ('queued', 'running')"
# A token per row, as `uuid.uuid4().hex` spells one; the dispatch time is the claim's.
DISPATCH_SET = (", dispatch_token = replace(gen_random_uuid()::text, '-', ''),"
                " dispatched_at = %s")
READY = "state = 'queued' AND mode = %s AND (not_before IS NULL OR not_before <= %s)"
# What `cancel` ends: a queued run, and a dispatched one no worker accepted yet (nothing of
# it ran; with its token gone, a late message finds nothing to accept).
CANCELLABLE = ("state = 'queued' OR (state = 'running' AND worker IS NULL"
               " AND dispatch_token IS NOT NULL)")
CANCELLED_BY_USER = "cancelled by user"


def fits_bigint(value: int) -> bool:
    """A larger int is no id: psycopg would send it as a numeric, which no index serves."""
    return -BIGINT_MAX - 1 <= value <= BIGINT_MAX


class Database(Protocol):
    """What the queue needs of the `PgStore` it lives in (which imports this module)."""

    conn: psycopg.Connection

    def write(self) -> AbstractContextManager[psycopg.Connection]: ...

    def lock(self, name: str) -> None: ...


class PgRunQueue:
    """`RunQueue` over the `runs` table of a `PgStore`, sharing its connection and its
    transactions (inside `store.write()`, a transition joins the caller's transaction)."""

    def __init__(self, store: Database) -> None:
        self.store = store
        self.notices: NoticeBook | None = None
        self.events_written = 0
        self.pricing: PricingSource | None = None

    @property
    def conn(self) -> psycopg.Connection:
        return self.store.conn

    # ---------------------------------------------------------------- transitions

    def enqueue(self, planned: Sequence[PlannedRun]) -> range:
        if not planned:
            return range(0)
        if len(planned) == 1 and self.conn.info.transaction_status == IDLE:
            return self._enqueue_one(planned[0])
        with self.store.write() as conn:
            self.store.lock("enqueue")
            with conn.cursor() as cursor:
                cursor.executemany(INSERT_PLANNED, _planned_rows(planned))
            last = _one(conn, "SELECT currval(pg_get_serial_sequence('runs', 'id'))")
            _announce(conn, {plan.mode.value for plan in planned})
        return range(last - len(planned) + 1, last + 1)

    def _enqueue_one(self, planned: PlannedRun) -> range:
        """One statement, so its own transaction: a submission of one run (where a run's
        dispatch latency begins) costs one round trip, its wake-up sent as it commits."""
        [(run_id,)] = self.conn.execute(ENQUEUE_ONE, (*_planned_values(planned),
                                                      WAKEUP_CHANNEL)).fetchall()
        return range(run_id, run_id + 1)

    def claim(self, mode: Mode, *, now: datetime, pool: PoolName,
              hands: Sequence[Hand]) -> list[list[ClaimedRun]]:
        ready, limited = self._readiness(mode, now) if hands else (False, False)
        if not ready:
            return [[] for _ in hands]
        if len(hands) == 1 and not limited:  # one statement is atomic: no transaction
            hand = hands[0]
            claim = _Claim(self.conn, mode, now, (now, pool.value, hand.worker, hand.batch_id))
            return [[_claimed(row, now) for row in sorted(claim.best(hand.room),
                                                          key=_queue_order)]]
        with self.store.write() as conn:
            return _claim_for_hands(conn, mode, now, pool, hands)

    def claim_ids(self, run_ids: Sequence[int], *, now: datetime, pool: PoolName,
                  worker: str) -> list[ClaimedRun]:
        known = [run_id for run_id in run_ids if fits_bigint(run_id)]
        if not known:
            return []
        with self.store.write() as conn:
            rooms = _workflow_rooms(conn)
            if rooms:
                known = _within_rooms(conn, known, rooms)
                if not known:
                    return []
            rows = conn.execute(
                "UPDATE runs SET state = 'running', claimed_at = %s, pool = %s, worker = %s"
                f" WHERE id = ANY(%s) AND state = 'queued' RETURNING {CLAIMED_COLUMNS}",
                (now, pool.value, worker, known)).fetchall()
            rows = _settle_damaged(conn, rows, now)
        return [_claimed(row, now) for row in sorted(rows, key=_queue_order)]

    def start(self, starts: Sequence[RunStart]) -> None:
        if not starts:
            return
        with self.store.write() as conn, conn.cursor() as cursor:
            cursor.executemany(
                "UPDATE runs SET started_at = %s, pid = %s, log_path = %s, off_peak = %s,"
                " queue_wait_s = %s WHERE id = %s",
                [(s.at, s.pid, s.log_path, s.off_peak, seconds_between(s.enqueued_at, s.at),
                  s.run_id) for s in starts])

    def record_step(self, run_id: int, group: StepGroup) -> None:
        with self.store.write() as conn:
            conn.execute("UPDATE runs SET pgid = %s, pgid_leader_start = %s, pgid_boot_id = %s"
                         " WHERE id = %s",
                         (group.pgid, group.leader_start, group.boot_id, run_id))

    def finish(self, ends: Sequence[RunEnd]) -> list[int]:
        ids = [end.run_id for end in ends]
        if not ids:
            return []
        pricing = self.pricing.current() if self.pricing is not None else None
        with self.store.write() as conn:
            self.start([end.start for end in ends if end.start is not None])
            rows = conn.execute(
                "SELECT id, workflow, pool FROM runs WHERE state = 'running' AND id = ANY(%s)"
                " FOR UPDATE", (ids,)).fetchall()
            running: dict[int, str] = {run_id: workflow for run_id, workflow, _ in rows}
            with conn.cursor() as cursor:
                cursor.executemany(
                    "UPDATE runs SET state = %s, finished_at = %s, exit_code = %s, error = %s,"
                    " cpu_user_s = %s, cpu_system_s = %s, peak_rss_kb = %s, duration_s = %s,"
                    " deadline_met = %s, energy_j = %s WHERE id = %s",
                    [_end_values(end) for end in ends if end.run_id in running])
            _announce(conn, {pool for _, _, pool in rows if pool in MODES})  # a slot is free
            if pricing is not None and pricing.has_series:
                _record_charges(conn, pricing, [end for end in ends if end.run_id in running])
            book = self.notices
            if book is not None and book.rules:
                self.events_written += record_end_events(
                    self, book, [run_id for run_id, workflow in running.items()
                                 if workflow in book.rules])
        return [run_id for run_id in ids if run_id not in running]

    def requeue(self, run_ids: Sequence[int], note: str | None = None) -> None:
        if not run_ids:
            return
        with self.store.write() as conn:
            modes = conn.execute(
                "UPDATE runs SET state = 'queued', claimed_at = NULL, started_at = NULL,"
                " pool = NULL, worker = NULL, batch_id = NULL, pid = NULL, pgid = NULL,"
                " pgid_leader_start = NULL, pgid_boot_id = NULL, queue_wait_s = NULL,"
                " dispatch_token = NULL, dispatched_at = NULL, host = NULL,"
                " error = %s WHERE id = ANY(%s) AND state = 'running' RETURNING mode",
                (note, list(run_ids))).fetchall()
            _announce(conn, {row[0] for row in modes})

    def cancel(self, run_ids: Sequence[int], *, now: datetime, error: str) -> list[int]:
        known = [run_id for run_id in run_ids if fits_bigint(run_id)]
        if not known:
            return []
        with self.store.write() as conn:
            rows = conn.execute(
                "UPDATE runs SET state = 'cancelled', finished_at = %s, error = %s,"
                f" dispatch_token = NULL WHERE id = ANY(%s) AND ({CANCELLABLE})"
                " RETURNING id, pool", (now, error, known)).fetchall()
            _announce(conn, {pool for _, pool in rows if pool in MODES})  # a slot is free
        return sorted(row[0] for row in rows)

    def promote(self, now: datetime) -> list[int]:
        due = self.next_promotion_at()
        if due is None or due > now:
            return []  # checked by a read: the daemon asks on every wake-up
        with self.store.write() as conn:
            rows = conn.execute(
                "UPDATE runs SET mode = 'real-time', mode_reason = 'promoted',"
                " not_before = NULL, promote_at = NULL WHERE state = 'queued'"
                " AND promote_at <= %s RETURNING id", (now,)).fetchall()
            if rows:
                _announce(conn, {Mode.REAL_TIME.value})
        return sorted(row[0] for row in rows)

    def defer(self, not_before: Sequence[tuple[int, datetime | None, str | None]]) -> None:
        if not not_before:
            return
        with self.store.write() as conn, conn.cursor() as cursor:
            cursor.executemany(
                "UPDATE runs SET not_before = %s, not_before_reason = %s"
                " WHERE id = %s AND state = 'queued'",
                [(moment, why, run_id) for run_id, moment, why in not_before])

    def settle_abandoned(self, run_ids: Sequence[int], *, now: datetime, note: str,
                         error: str, next_attempt: NextAttempt = no_retry) -> list[Run]:
        if not run_ids:
            return []
        with self.store.write() as conn:
            conn.execute("SELECT 1 FROM runs WHERE id = ANY(%s) FOR UPDATE", (list(run_ids),))
            runs = [run for run in map(self.get, run_ids) if run.state is RunState.RUNNING]
            runs = self._end_cancelled(runs, now)
            self.requeue([run.id for run in runs if run.started_at is None], note)
            started = [run for run in runs if run.started_at is not None]
            outcome = Outcome(RunState.FAILED, error=error)
            self.finish([RunEnd.of(run, outcome, now) for run in started])
            failed = [self.get(run.id) for run in started]
            self.enqueue([plan for plan in map(next_attempt, failed) if plan is not None])
            return failed

    def _end_cancelled(self, runs: list[Run], now: datetime) -> list[Run]:
        """Of runs nobody holds, those whose cancel was asked (`PgWorkers.request_cancel`) end
        cancelled, never put back in line nor retried; the others."""
        asked = {row[0] for row in self.conn.execute(
            "SELECT id FROM runs WHERE id = ANY(%s) AND cancel_requested_at IS NOT NULL",
            ([run.id for run in runs],))}
        outcome = Outcome(RunState.CANCELLED, error=CANCELLED_BY_USER)
        self.finish([RunEnd.of(run, outcome, now) for run in runs if run.id in asked])
        return [run for run in runs if run.id not in asked]

    def prune(self, run_ids: Sequence[int], *, zone: tzinfo) -> list[PrunedRun]:
        known = [run_id for run_id in run_ids if fits_bigint(run_id)]
        if not known:
            return []
        with self.store.write() as conn:
            self.store.lock("prune")  # two pruners adding to one new rollup row would race
            rows = finished_rows(conn, known)
            add_rollups(conn, rows, zone)
            gone = [row["id"] for row in rows]
            conn.execute("DELETE FROM runs WHERE id = ANY(%s)", (gone,))
            # A cluster's logs are the chunks its workers wrote: they go with their runs.
            conn.execute("DELETE FROM run_log_chunks WHERE run_id = ANY(%s)", (gone,))
        return [PrunedRun(row["id"], row["log_path"]) for row in rows]

    # ---------------------------------------------------------------- reads

    def get(self, run_id: int) -> Run:
        row = None
        if fits_bigint(run_id):
            row = self.conn.execute(f"{SELECT_RUN} WHERE id = %s", (run_id,)).fetchone()
        if row is None:
            raise NotFound(f"unknown run {run_id} (see `easyflow runs list`)")
        return run_of_row(row)

    def charges(self, run_id: int) -> Charges:
        row = self.conn.execute(f"SELECT {', '.join(CHARGE_COLUMNS)} FROM runs WHERE id = %s",
                                (run_id,)).fetchone() if fits_bigint(run_id) else None
        return Charges() if row is None else Charges(*row)

    def step_group(self, run_id: int) -> StepGroup | None:
        row = self.conn.execute(
            "SELECT pgid, pgid_leader_start, pgid_boot_id FROM runs WHERE id = %s",
            (run_id,)).fetchone()
        return None if row is None or row[0] is None else StepGroup(*row)

    def retried_as(self, run_id: int) -> Run | None:
        if not fits_bigint(run_id):
            return None
        row = self.conn.execute(f"{SELECT_RUN} WHERE retry_of = %s ORDER BY id LIMIT 1",
                                (run_id,)).fetchone()
        return None if row is None else run_of_row(row)

    def latest(self, *, workflow: str | None = None, state: RunState | None = None,
               limit: int = 50) -> list[Run]:
        rows = self.conn.execute(
            f"{SELECT_RUN} WHERE (%s::text IS NULL OR workflow = %s)"
            " AND (%s::text IS NULL OR state = %s) ORDER BY id DESC LIMIT %s",
            (workflow or None, workflow or None, state and RunState(state).value,
             state and RunState(state).value, limit))
        return [run_of_row(row) for row in rows]

    def running(self) -> list[Run]:
        runs = []
        for row in self.conn.execute(f"{SELECT_RUN} WHERE state = 'running' ORDER BY id"):
            try:
                runs.append(run_of_row(row))
            except DamagedRow as exc:
                log.error("%s; left out of the running runs", exc)
        return runs

    def queued_ids(self, workflow: str) -> list[int]:
        return [row[0] for row in self.conn.execute(
            "SELECT id FROM runs WHERE workflow = %s AND state = 'queued' ORDER BY id",
            (workflow,))]

    def off_peak_waiting(self) -> list[tuple[int, str, datetime | None]]:
        return [(row[0], row[1], row[2]) for row in self.conn.execute(
            "SELECT id, workflow, deadline FROM runs WHERE state = 'queued' AND mode = 'eco'"
            " AND trigger != 'retry'")]

    def depths(self) -> dict[Mode, int]:
        depths = dict.fromkeys(Mode, 0)
        for mode, count in self.conn.execute(
            "SELECT mode, count(*) FROM runs WHERE state = 'queued' GROUP BY mode"
        ):
            if mode in MODES:  # a mode changed by other means is nobody's queue
                depths[Mode(mode)] = count
        return depths

    def ahead_of(self, run_id: int, now: datetime) -> int:
        if not 0 < run_id <= BIGINT_MAX:
            return 0
        return _one(
            self.conn, "SELECT count(*) FROM runs AS other, runs AS this"
            " WHERE this.id = %s AND this.state = 'queued' AND other.state = 'queued'"
            " AND other.mode = this.mode AND (other.not_before IS NULL OR other.not_before <= %s)"
            " AND (coalesce(other.deadline, 'infinity'), other.priority_rank, other.id)"
            " < (coalesce(this.deadline, 'infinity'), this.priority_rank, this.id)",
            (run_id, now))

    def held_by_limit(self) -> list[HeldByLimit]:
        limits: dict[str, int] = dict(self.conn.execute(
            "SELECT name, max_concurrent FROM workflows WHERE max_concurrent IS NOT NULL"
        ).fetchall())
        if not limits:
            return []
        running = _running_counts(self.conn)
        queued: dict[str, int] = dict(self.conn.execute(
            "SELECT workflow, count(*) FROM runs WHERE state = 'queued' GROUP BY workflow"
        ).fetchall())
        return [HeldByLimit(name, limit, running.get(name, 0), queued[name])
                for name, limit in sorted(limits.items())
                if queued.get(name) and running.get(name, 0) >= limit]

    def next_promotion_at(self) -> datetime | None:
        return _one(self.conn, "SELECT min(promote_at) FROM runs WHERE state = 'queued'")

    def next_ready_at(self, mode: Mode, now: datetime) -> datetime | None:
        return _one(self.conn, "SELECT min(not_before) FROM runs WHERE state = 'queued'"
                    " AND mode = %s AND not_before > %s", (mode.value, now))

    def typical_duration(self, workflow: str, sample: int = 20) -> timedelta | None:
        rows = self.conn.execute(
            "SELECT duration_s FROM runs WHERE workflow = %s AND state = 'succeeded'"
            " AND duration_s IS NOT NULL ORDER BY id DESC LIMIT %s", (workflow, sample),
        ).fetchall()
        if not rows:
            return None
        return timedelta(seconds=median(row[0] for row in rows))

    def recent_successes(self, workflow: str, mode: Mode | None = None,
                         limit: int = 50) -> list[RunSample]:
        rows = self.conn.execute(
            "SELECT finished_at, duration_s, coalesce(cpu_user_s, 0) + coalesce(cpu_system_s, 0),"
            " energy_j FROM runs WHERE workflow = %s AND state = 'succeeded'"
            " AND duration_s IS NOT NULL AND finished_at IS NOT NULL"
            " AND (%s::text IS NULL OR mode = %s) ORDER BY id DESC LIMIT %s",
            (workflow, mode and mode.value, mode and mode.value, limit)).fetchall()
        return [RunSample(*row) for row in rows]

    def awaited(self, workflows: Sequence[str]) -> list[Run]:
        if not workflows:
            return []
        rows = self.conn.execute(
            f"{SELECT_RUN} WHERE state IN ('queued', 'running') AND workflow = ANY(%s)"
            " AND (deadline IS NOT NULL OR (state = 'queued'"
            " AND trigger IN ('schedule', 'catch-up'))) ORDER BY id", (list(workflows),))
        return [run_of_row(row) for row in rows]

    def has_pending_recurring(self, workflow: str) -> bool:
        row = self.conn.execute(
            "SELECT 1 FROM runs WHERE workflow = %s AND state IN ('queued', 'running')"
            " AND trigger IN ('schedule', 'catch-up', 'retry') LIMIT 1", (workflow,)).fetchone()
        return row is not None

    def finished_before(self, cutoff: datetime, *, workflow: str | None = None,
                        limit: int) -> list[int]:
        return [row[0] for row in self.conn.execute(
            f"SELECT id FROM runs WHERE finished_at < %s AND {FINISHED}"
            " AND (%s::text IS NULL OR workflow = %s) ORDER BY finished_at, id LIMIT %s",
            (cutoff, workflow, workflow, limit))]

    def beyond_newest(self, workflow: str, keep: int, *, limit: int) -> list[int]:
        oldest_kept = self.conn.execute(
            f"SELECT id FROM runs WHERE workflow = %s AND {FINISHED} ORDER BY id DESC"
            " LIMIT 1 OFFSET %s", (workflow, keep - 1)).fetchone()
        if oldest_kept is None:
            return []
        return [row[0] for row in self.conn.execute(
            f"SELECT id FROM runs WHERE workflow = %s AND id < %s AND {FINISHED} ORDER BY id"
            " LIMIT %s", (workflow, oldest_kept[0], limit))]

    def oldest_finished_at(self) -> datetime | None:
        return _one(self.conn, "SELECT min(finished_at) FROM runs")

    def unfinished_count(self, ids: range) -> int:
        return _one(self.conn, "SELECT count(*) FROM runs WHERE id BETWEEN %s AND %s"
                    " AND state IN ('queued', 'running')", (ids.start, ids.stop - 1))

    def last_finished_at(self, ids: range) -> datetime | None:
        return _one(self.conn, "SELECT max(finished_at) FROM runs WHERE id BETWEEN %s AND %s",
                    (ids.start, ids.stop - 1))

    def _readiness(self, mode: Mode, now: datetime) -> tuple[bool, bool]:
        """Is a run of the mode ready, and does any workflow set a `max_concurrent`? A read
        first: the coordinator asks every idle pool on every wake-up, and most of the time
        the answer is no. (A limit set after this read applies from the next claim on, as if
        this claim had come first.)"""
        row = self.conn.execute(
            f"SELECT EXISTS (SELECT 1 FROM runs WHERE {READY}), EXISTS (SELECT 1 FROM workflows"
            " WHERE max_concurrent IS NOT NULL)", (mode.value, now)).fetchone()
        assert row is not None  # a SELECT without FROM gives one row
        return row[0], row[1]


class _Claim:
    """The claim of ready runs of one mode, in the ready queue's order, inside the caller's
    transaction. `values`: claimed_at, pool, worker, batch_id to set."""

    def __init__(self, conn: psycopg.Connection, mode: Mode, now: datetime,
                 values: tuple) -> None:
        self.conn = conn
        self.mode = mode
        self.now = now
        self.values = values

    def best(self, limit: int, skipped: Sequence[str] = (), *,
             dispatched: bool = False) -> list[Any]:
        """Up to `limit` of the first ready runs no other transaction holds, but none of the
        `skipped` workflows'. `dispatched`: each gets a dispatch token of its own (returned
        after the CLAIMED_COLUMNS) and its dispatch time."""
        tokens = DISPATCH_SET if dispatched else ""
        rows = self.conn.execute(
            f"WITH picked AS (SELECT id FROM runs WHERE {READY}"
            " AND NOT (workflow = ANY(%s)) ORDER BY deadline, priority_rank, id LIMIT %s"
            " FOR UPDATE SKIP LOCKED)"
            " UPDATE runs SET state = 'running', claimed_at = %s, pool = %s, worker = %s,"
            f" batch_id = %s{tokens} FROM picked WHERE runs.id = picked.id"
            f" RETURNING {', '.join(f'runs.{c}' for c in CLAIMED_NAMES)}"
            f"{', runs.dispatch_token' if dispatched else ''}",
            (self.mode.value, self.now, list(skipped), limit, *self.values,
             *((self.now,) if dispatched else ()))).fetchall()
        return _settle_damaged(self.conn, rows, self.now)

    def within(self, rooms: dict[str, int], limit: int) -> list[Any]:
        """Up to `limit` runs, none beyond its workflow's room (`max_concurrent` less those
        running). Runs claimed past a room go back at once, and their workflow is skipped
        from then on: at most one more round per limited workflow."""
        claimed: list[Any] = []
        while len(claimed) < limit:
            full = [name for name, room in rooms.items() if room <= 0]
            rows = self.best(limit - len(claimed), full)
            if not rows:
                break
            rows.sort(key=_queue_order)
            kept, over = keep_within(rows, rooms)
            claimed += kept
            if not over:
                break
            self.conn.execute(
                "UPDATE runs SET state = 'queued', claimed_at = NULL, pool = NULL,"
                " worker = NULL, batch_id = NULL WHERE id = ANY(%s)", (over,))
        return claimed


def claim_dispatches(conn: psycopg.Connection, mode: Mode, now: datetime, pool: PoolName,
                     limit: int) -> list[tuple[int, str]]:
    """Claim up to `limit` ready runs of `mode` for no worker yet, each with a dispatch token
    of its own, in one statement (atomic, so no transaction): for a claim no `max_concurrent`
    holds back. Their ids and tokens, in the queue's order."""
    claim = _Claim(conn, mode, now, (now, pool.value, None, None))
    rows = sorted(claim.best(limit, dispatched=True), key=_queue_order)
    return [(row[0], row[-1]) for row in rows]


def _claim_for_hands(conn: psycopg.Connection, mode: Mode, now: datetime, pool: PoolName,
                     hands: Sequence[Hand]) -> list[list[ClaimedRun]]:
    """`claim` inside a transaction: within the limited workflows' rooms, dealt to hands."""
    worker, batch_id = (hands[0].worker, hands[0].batch_id) if len(hands) == 1 else (None, None)
    claim = _Claim(conn, mode, now, (now, pool.value, worker, batch_id))
    rooms = _workflow_rooms(conn)
    limit = sum(hand.room for hand in hands)
    rows = claim.within(rooms, limit) if rooms else claim.best(limit)
    rows.sort(key=_queue_order)
    dealt = deal([_claimed(row, now) for row in rows], [hand.room for hand in hands])
    if len(hands) > 1:  # the claim set no worker: each hand's runs get theirs
        with conn.cursor() as cursor:
            cursor.executemany("UPDATE runs SET worker = %s, batch_id = %s WHERE id = %s",
                               [(hand.worker, hand.batch_id, run.id)
                                for hand, runs in zip(hands, dealt, strict=True)
                                for run in runs])
    return dealt



def _workflow_rooms(conn: psycopg.Connection) -> dict[str, int]:
    """How many more runs each workflow with a `max_concurrent` may have running now. The
    limited workflows' rows stay locked to the end of the claim's transaction: another
    claimer counts after this one's claims are committed."""
    limits = conn.execute(
        "SELECT name, max_concurrent FROM workflows WHERE max_concurrent IS NOT NULL"
        " ORDER BY name FOR NO KEY UPDATE").fetchall()
    if not limits:
        return {}
    running = _running_counts(conn)
    return {name: limit - running.get(name, 0) for name, limit in limits}


def _running_counts(conn: psycopg.Connection) -> dict[str, int]:
    return dict(conn.execute(
        "SELECT workflow, count(*) FROM runs WHERE state = 'running' GROUP BY workflow"
    ).fetchall())


def _within_rooms(conn: psycopg.Connection, run_ids: Sequence[int],
                  rooms: dict[str, int]) -> list[int]:
    """Those of these runs their workflows' rooms let start, first asked first."""
    rows = conn.execute("SELECT id, workflow FROM runs WHERE id = ANY(%s)"
                        " AND state = 'queued' ORDER BY id", (list(run_ids),)).fetchall()
    kept, _ = keep_within(rows, rooms)
    return [row[0] for row in kept]


def _announce(conn: psycopg.Connection, modes: set[str]) -> None:
    """Tell the listeners which modes have runs that may be ready (sent at commit)."""
    for mode in sorted(modes):
        conn.execute("SELECT pg_notify(%s, %s)", (WAKEUP_CHANNEL, mode))


def _one(conn: psycopg.Connection, sql: str, args: tuple = ()) -> Any:
    row = conn.execute(sql, args).fetchone()
    return None if row is None else row[0]


def _planned_rows(planned: Sequence[PlannedRun]) -> Iterator[tuple]:
    """Planned runs as rows in PLANNED_COLUMNS order; one plan queued many times over (a bulk
    submission) is converted once."""
    last, row = None, ()
    for run in planned:
        if run is not last:
            last, row = run, _planned_values(run)
        yield row


def _planned_values(planned: PlannedRun) -> tuple:
    return (planned.workflow, planned.trigger.value, planned.mode.value,
            planned.mode_reason.value, planned.cost_priority.value, planned.cost_priority.rank,
            planned.deadline, RunState.QUEUED.value, planned.enqueued_at, planned.not_before,
            planned.promote_at, planned.attempt, planned.retry_of, planned.rerun_of,
            planned.schedule_id, planned.not_before_reason, planned.followed)


def _queue_order(row: Any) -> tuple[bool, datetime | None, int, int]:
    """The ready queue's order, for rows of CLAIMED_COLUMNS (no deadline last)."""
    return (row[4] is None, row[4], CostPriority(row[3]).rank, row[0])


def _claimed(row: Any, claimed_at: datetime) -> ClaimedRun:
    return ClaimedRun(row[0], row[1], Mode(row[2]), CostPriority(row[3]), row[4], row[5],
                      claimed_at)




def _end_values(end: RunEnd) -> tuple:
    outcome = end.outcome
    met = None if end.deadline is None else end.at <= end.deadline
    return (outcome.state.value, end.at, outcome.exit_code, outcome.error,
            outcome.cpu_user_s, outcome.cpu_system_s, outcome.peak_rss_kb,
            end.duration_s(), met, outcome.energy_j, end.run_id)


def _settle_damaged(conn: psycopg.Connection, rows: list[Any], now: datetime) -> list[Any]:
    """The claimed rows (of CLAIMED_COLUMNS) but those changed by other means, which are
    settled as failed: left queued, they would come first again at every claim."""
    good = []
    for row in rows:
        if row[2] in MODES and row[3] in PRIORITIES:
            good.append(row)
            continue
        problem = damage(row[0], dict(zip(CLAIMED_NAMES[:4], row, strict=False)))
        log.error("%s; settled as failed", problem)
        conn.execute("UPDATE runs SET state = 'failed', finished_at = %s, error = %s"
                     " WHERE id = %s", (now, str(problem), row[0]))
    return good


def run_of_row(row: Any) -> Run:
    """A row of SELECT_RUN as a Run; a value easyflow never writes is one line naming the run
    and the field (times and numbers are typed columns: only the enums' text can be wrong)."""
    values = dict(zip(RUN_FIELDS, row, strict=True))
    try:
        for column, kind in ENUM_COLUMNS.items():
            if values[column] is not None:
                values[column] = kind(values[column])
    except ValueError:
        problem = damage(row[0], {column: values[column] for column in ENUM_COLUMNS})
        if problem is None:
            raise
        raise problem from None
    return Run(**values)


def _record_charges(conn: psycopg.Connection, pricing: Pricing, ends: Sequence[RunEnd]) -> None:
    """Charge the runs that just ended under the series loaded (in `finish`'s transaction)."""
    submitted = {run_id: (Mode(mode), enqueued) for run_id, mode, enqueued in conn.execute(
        "SELECT id, mode, enqueued_at FROM runs WHERE id = ANY(%s)",
        ([end.run_id for end in ends],))}
    with conn.cursor() as cursor:
        cursor.executemany(
            f"UPDATE runs SET {', '.join(f'{c} = %s' for c in CHARGE_COLUMNS)} WHERE id = %s",
            [(*(getattr(charges, c) for c in CHARGE_COLUMNS), run_id)
             for run_id, charges in charged_ends(pricing, ends, submitted)])
