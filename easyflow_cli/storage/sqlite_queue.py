"""The run queue in SQLite: the `runs` table and its transitions, each one short transaction.

The only place that reads or writes runs with SQL (the reports' aggregate queries aside). What
each method changes is documented on `RunQueue`; here is only how.
"""

from __future__ import annotations

import json
import logging
import sqlite3
from collections.abc import Iterable, Iterator, Sequence
from contextlib import AbstractContextManager
from datetime import datetime, timedelta, tzinfo
from typing import Any, Protocol

from easyflow_cli.core.errors import DamagedRow, NotFound
from easyflow_cli.core.learned import RunSample
from easyflow_cli.core.model import (
    RUN_FIELDS,
    ClaimedRun,
    CostPriority,
    Mode,
    ModeReason,
    Outcome,
    PoolName,
    Run,
    RunState,
    StepGroup,
    Trigger,
)
from easyflow_cli.core.notify import NoticeBook
from easyflow_cli.core.planning import PlannedRun
from easyflow_cli.core.receipts import Charges, PricingSource
from easyflow_cli.core.stats import median
from easyflow_cli.core.timeutil import from_iso, to_iso
from easyflow_cli.storage.damaged_rows import KNOWN, MODES, damage
from easyflow_cli.storage.rollups import RUN_COLUMNS, add_rollups, rollups_of
from easyflow_cli.storage.run_queue import (
    Hand,
    HeldByLimit,
    NextAttempt,
    PrunedRun,
    RunEnd,
    RunStart,
    deal,
    keep_within,
    no_retry,
    seconds_between,
)
from easyflow_cli.storage.sqlite_charges import charges, record_charges
from easyflow_cli.storage.sqlite_outbox import record_end_events
from easyflow_cli.storage.summaries import mark_inserted, mark_late_finishes

log = logging.getLogger("easyflow.queue")

SQLITE_INTEGER_MAX = 2**63 - 1
# Below SQLite's limit on the parameters of one statement (a workflow may have more runs queued).
MAX_BOUND_IDS = 10_000
PLANNED_COLUMNS = ("workflow", "trigger", "mode", "mode_reason", "cost_priority",
                   "priority_rank", "deadline", "state", "enqueued_at", "not_before",
                   "promote_at", "attempt", "retry_of", "rerun_of", "schedule_id",
                   "not_before_reason", "followed")
CLAIMED_COLUMNS = "id, workflow, mode, cost_priority, deadline, enqueued_at"
CLAIMED_NAMES = tuple(CLAIMED_COLUMNS.split(", "))
PRIORITIES = KNOWN["cost_priority"]
SELECT_RUN = f"SELECT {', '.join(RUN_FIELDS)} FROM runs"
# The ready queue's order (the runs_ready and runs_deferred indexes serve it): earliest
# deadline, priority, first in.
NO_DEADLINE = "9999"
CLAIM_ORDER_SQL = f"mode, coalesce(deadline, '{NO_DEADLINE}'), priority_rank, id"
# A queued run is in one of two parts of the queue: ready now, or deferred to its `not_before`
# (ready once that has come). Queries spell these exactly so: their partial indexes match them.
READY_NOW_SQL = "state = 'queued' AND not_before IS NULL"
DEFERRED_SQL = "state = 'queued' AND not_before IS NOT NULL"
QUEUE_PARTS = (("runs_ready", READY_NOW_SQL), ("runs_waiting", DEFERRED_SQL))
# Up to this many deferred runs whose time has come are claimed off runs_waiting and sorted;
# more, and the claim walks runs_deferred in the queue's order instead.
RIPE_SORTED_AT_MOST = 500
FINISHED = "state NOT IN ('queued', 'running')"


def fits_sqlite_integer(value: int) -> bool:
    """Binding a larger int raises OverflowError, so such an id can only be unknown."""
    return -SQLITE_INTEGER_MAX - 1 <= value <= SQLITE_INTEGER_MAX


class Database(Protocol):
    """What the queue needs of the `Store` it lives in, named rather than imported (the store
    imports this module): its connection, and its write transactions, which nest."""

    conn: sqlite3.Connection

    def write(self) -> AbstractContextManager[sqlite3.Connection]: ...


class SqliteRunQueue:
    """`RunQueue` over the `runs` table of a `Store` (sharing its connection and its
    transactions: inside `store.write()`, a transition joins the caller's transaction)."""

    def __init__(self, store: Database) -> None:
        self.store = store
        self.notices: NoticeBook | None = None
        self.events_written = 0
        self.pricing: PricingSource | None = None

    @property
    def conn(self) -> sqlite3.Connection:
        return self.store.conn

    # ---------------------------------------------------------------- transitions

    def enqueue(self, planned: Sequence[PlannedRun]) -> range:
        if not planned:
            return range(0)
        return insert_runs(self.store, PLANNED_COLUMNS, _planned_rows(planned))

    def claim(self, mode: Mode, *, now: datetime, pool: PoolName,
              hands: Sequence[Hand]) -> list[list[ClaimedRun]]:
        stamp = to_iso(now)
        if not hands or not self._has_ready_run(mode, stamp):
            return [[] for _ in hands]
        worker: str | None = None
        batch_id: str | None = None
        if len(hands) == 1:  # the claim itself sets the one hand's worker and batch
            worker, batch_id = hands[0].worker, hands[0].batch_id
        with self.store.write() as conn:
            claim = _Claim(conn, mode, stamp, (stamp, pool.value, worker, batch_id))
            rooms = _workflow_rooms(conn)
            limit = sum(hand.room for hand in hands)
            rows = claim.within(rooms, limit) if rooms else claim.best(limit)
            # RETURNING gives no order; the best run must be the first one to start.
            rows.sort(key=_queue_order)
            dealt = deal(_claimed_runs(rows, now), [hand.room for hand in hands])
            if len(hands) > 1:
                conn.executemany("UPDATE runs SET worker = ?, batch_id = ? WHERE id = ?",
                                 [(hand.worker, hand.batch_id, run.id)
                                  for hand, runs in zip(hands, dealt, strict=True)
                                  for run in runs])
        return dealt

    def claim_ids(self, run_ids: Sequence[int], *, now: datetime, pool: PoolName,
                  worker: str) -> list[ClaimedRun]:
        if not run_ids:
            return []
        with self.store.write() as conn:
            rooms = _workflow_rooms(conn)
            if rooms:
                run_ids = _within_rooms(conn, run_ids, rooms)
                if not run_ids:
                    return []
            rows = conn.execute(
                "UPDATE runs SET state = 'running', claimed_at = ?, pool = ?, worker = ?"
                f" WHERE id IN ({_marks(run_ids)}) AND state = 'queued'"
                f" RETURNING {CLAIMED_COLUMNS}",
                (to_iso(now), pool.value, worker, *run_ids)).fetchall()
            rows = _settle_damaged(conn, rows, to_iso(now))
        return _claimed_runs(sorted(rows, key=_queue_order), now)

    def start(self, starts: Sequence[RunStart]) -> None:
        if not starts:
            return
        with self.store.write() as conn:
            conn.executemany(f"UPDATE runs SET {START_SET_SQL} WHERE id = ?",
                             [(*_start_values(s), s.run_id) for s in starts])

    def record_step(self, run_id: int, group: StepGroup) -> None:
        with self.store.write() as conn:
            conn.execute("UPDATE runs SET pgid = ?, pgid_leader_start = ?, pgid_boot_id = ?"
                         " WHERE id = ?", (group.pgid, group.leader_start, group.boot_id, run_id))

    def finish(self, ends: Sequence[RunEnd]) -> list[int]:
        ids = [end.run_id for end in ends]
        if not ids:
            return []
        # Asked before the transaction: a foreground run reads a changed file then, not under
        # the lock (the daemon reads it in a thread).
        pricing = self.pricing.current() if self.pricing is not None else None
        with self.store.write() as conn:
            # The ids as one JSON text: one statement, prepared once, however many runs end
            # (a list of marks is a new statement, compiled, for every new count).
            running = dict(conn.execute(
                "SELECT id, workflow FROM runs WHERE state = 'running'"
                " AND id IN (SELECT value FROM json_each(?))", (json.dumps(ids),)).fetchall())
            self._record_ends(conn, [end for end in ends if end.run_id in running])
            mark_late_finishes(conn, [end.at for end in ends if end.run_id in running])
            self.start([end.start for end in ends
                        if end.start is not None and end.run_id not in running])
            if pricing is not None and pricing.has_series:
                record_charges(conn, pricing, [end for end in ends if end.run_id in running])
            book = self.notices
            if book is not None and book.rules:
                self.events_written += record_end_events(
                    self, book, [run_id for run_id, workflow in running.items()
                                 if workflow in book.rules])
        return [run_id for run_id in ids if run_id not in running]

    @staticmethod
    def _record_ends(conn: sqlite3.Connection, ends: Sequence[RunEnd]) -> None:
        """Each run's row written once: with its start, when that came with its end (each
        write of a row costs as much again as the first)."""
        alone = [_end_values(end) for end in ends if end.start is None]
        if alone:
            conn.executemany(f"UPDATE runs SET {END_SET_SQL} WHERE id = ?", alone)
        started = [(*_start_values(end.start), *_end_values(end)) for end in ends
                   if end.start is not None]
        if started:
            conn.executemany(f"UPDATE runs SET {START_SET_SQL}, {END_SET_SQL} WHERE id = ?",
                             started)

    def requeue(self, run_ids: Sequence[int], note: str | None = None) -> None:
        if not run_ids:
            return
        with self.store.write() as conn:
            conn.executemany(
                "UPDATE runs SET state = 'queued', claimed_at = NULL, started_at = NULL,"
                " pool = NULL, worker = NULL, batch_id = NULL, pid = NULL, pgid = NULL,"
                " pgid_leader_start = NULL, pgid_boot_id = NULL, queue_wait_s = NULL, error = ?"
                " WHERE id = ? AND state = 'running'",
                [(note, run_id) for run_id in run_ids])

    def cancel(self, run_ids: Sequence[int], *, now: datetime, error: str) -> list[int]:
        known = [run_id for run_id in run_ids if fits_sqlite_integer(run_id)]
        if not known:
            return []
        cancelled: list[int] = []
        with self.store.write() as conn:
            for start in range(0, len(known), MAX_BOUND_IDS):
                chunk = known[start:start + MAX_BOUND_IDS]
                cancelled += (row[0] for row in conn.execute(
                    "UPDATE runs SET state = 'cancelled', finished_at = ?, error = ?"
                    f" WHERE id IN ({_marks(chunk)}) AND state = 'queued' RETURNING id",
                    (to_iso(now), error, *chunk)))
            if cancelled:
                mark_late_finishes(conn, [now])
        return sorted(cancelled)

    def promote(self, now: datetime) -> list[int]:
        due = self.next_promotion_at()
        if due is None or due > now:
            return []  # checked by a read: the daemon asks on every wake-up
        with self.store.write() as conn:
            rows = conn.execute(
                "UPDATE runs SET mode = 'real-time', mode_reason = 'promoted', not_before = NULL,"
                " promote_at = NULL WHERE state = 'queued' AND promote_at IS NOT NULL"
                " AND promote_at <= ? RETURNING id", (to_iso(now),),
            ).fetchall()
        return sorted(row[0] for row in rows)

    def defer(self, not_before: Sequence[tuple[int, datetime | None, str | None]]) -> None:
        if not not_before:
            return
        with self.store.write() as conn:
            conn.executemany("UPDATE runs SET not_before = ?, not_before_reason = ?"
                             " WHERE id = ? AND state = 'queued'",
                             [(to_iso(moment), why, run_id) for run_id, moment, why in not_before])

    def settle_abandoned(self, run_ids: Sequence[int], *, now: datetime, note: str,
                         error: str, next_attempt: NextAttempt = no_retry) -> list[Run]:
        if not run_ids:
            return []
        with self.store.write():
            runs = [run for run in map(self.get, run_ids) if run.state is RunState.RUNNING]
            self.requeue([run.id for run in runs if run.started_at is None], note)
            started = [run for run in runs if run.started_at is not None]
            outcome = Outcome(RunState.FAILED, error=error)
            self.finish([RunEnd.of(run, outcome, now) for run in started])
            failed = [self.get(run.id) for run in started]
            self.enqueue([plan for plan in map(next_attempt, failed) if plan is not None])
            return failed

    def prune(self, run_ids: Sequence[int], *, zone: tzinfo) -> list[PrunedRun]:
        known = [run_id for run_id in run_ids if fits_sqlite_integer(run_id)]
        pruned: list[PrunedRun] = []
        with self.store.write() as conn:
            for start in range(0, len(known), MAX_BOUND_IDS):
                chunk = known[start:start + MAX_BOUND_IDS]
                rows = conn.execute(
                    f"SELECT id, log_path, {', '.join(RUN_COLUMNS)} FROM runs"
                    f" WHERE id IN ({_marks(chunk)}) AND {FINISHED}", chunk).fetchall()
                add_rollups(conn, rollups_of(rows, zone))
                gone = [row["id"] for row in rows]
                conn.execute(f"DELETE FROM runs WHERE id IN ({_marks(gone)})", gone)
                pruned += (PrunedRun(row["id"], row["log_path"]) for row in rows)
        return pruned

    # ---------------------------------------------------------------- reads

    def get(self, run_id: int) -> Run:
        row = None
        if fits_sqlite_integer(run_id):
            row = self.conn.execute(f"{SELECT_RUN} WHERE id = ?", (run_id,)).fetchone()
        if row is None:
            raise NotFound(f"unknown run {run_id} (see `easyflow runs list`)")
        return _run(row)

    def charges(self, run_id: int) -> Charges:
        return charges(self.conn, run_id)

    def step_group(self, run_id: int) -> StepGroup | None:
        row = self.conn.execute(
            "SELECT pgid, pgid_leader_start, pgid_boot_id FROM runs WHERE id = ?",
            (run_id,)).fetchone()
        return None if row is None or row[0] is None else StepGroup(*row)

    def retried_as(self, run_id: int) -> Run | None:
        if not fits_sqlite_integer(run_id):
            return None
        row = self.conn.execute(f"{SELECT_RUN} WHERE retry_of = ? ORDER BY id LIMIT 1",
                                (run_id,)).fetchone()
        return None if row is None else _run(row)

    def latest(self, *, workflow: str | None = None, state: RunState | None = None,
             limit: int = 50) -> list[Run]:
        clauses, args = [], []
        if workflow:
            clauses.append("workflow = ?")
            args.append(workflow)
        if state:
            clauses.append("state = ?")
            args.append(RunState(state).value)
        where = f" WHERE {' AND '.join(clauses)}" if clauses else ""
        rows = self.conn.execute(f"{SELECT_RUN}{where} ORDER BY id DESC LIMIT ?",
                                 (*args, limit))
        return [_run(row) for row in rows]

    def running(self) -> list[Run]:
        runs = []
        for row in self.conn.execute(f"{SELECT_RUN} WHERE state = 'running' ORDER BY id"):
            try:
                runs.append(_run(row))
            except DamagedRow as exc:
                log.error("%s; left out of the running runs", exc)
        return runs

    def queued_ids(self, workflow: str) -> list[int]:
        return [row[0] for row in self.conn.execute(
            "SELECT id FROM runs WHERE workflow = ? AND state = 'queued' ORDER BY id",
            (workflow,))]

    def off_peak_waiting(self) -> list[tuple[int, str, datetime | None]]:
        return [(row[0], row[1], from_iso(row[2])) for index, part in QUEUE_PARTS
                for row in self.conn.execute(
                    f"SELECT id, workflow, deadline FROM runs INDEXED BY {index} WHERE {part}"
                    " AND mode = 'eco' AND trigger != 'retry'")]

    def depths(self) -> dict[Mode, int]:
        depths = dict.fromkeys(Mode, 0)
        for index, part in QUEUE_PARTS:
            for mode, count in self.conn.execute(
                f"SELECT mode, count(*) FROM runs INDEXED BY {index} WHERE {part} GROUP BY mode"
            ):
                if mode in MODES:  # a mode changed by other means is nobody's queue
                    depths[Mode(mode)] += count
        return depths

    def ahead_of(self, run_id: int, now: datetime) -> int:
        if not fits_sqlite_integer(run_id):
            return 0
        place = self.conn.execute(
            f"SELECT mode, coalesce(deadline, '{NO_DEADLINE}'), priority_rank FROM runs"
            " WHERE id = ? AND state = 'queued'", (run_id,)).fetchone()
        if place is None:
            return 0
        before = (f"mode = ? AND (coalesce(deadline, '{NO_DEADLINE}'), priority_rank, id)"
                  " < (?, ?, ?)")
        args = (*place, run_id)
        # Each part of the queue off its own index, as the claim reads them.
        ready, due = self.conn.execute(
            f"SELECT (SELECT count(*) FROM runs INDEXED BY runs_ready"
            f" WHERE {READY_NOW_SQL} AND {before}),"
            f" (SELECT count(*) FROM runs INDEXED BY runs_deferred"
            f" WHERE {DEFERRED_SQL} AND {before} AND not_before <= ?)",
            (*args, *args, to_iso(now))).fetchone()
        return ready + due

    def held_by_limit(self) -> list[HeldByLimit]:
        limits = dict(self.conn.execute(
            "SELECT name, max_concurrent FROM workflows WHERE max_concurrent IS NOT NULL"))
        if not limits:
            return []
        running = dict(self.conn.execute(
            "SELECT workflow, count(*) FROM runs WHERE state = 'running' GROUP BY workflow"))
        # Named: grouping by workflow, SQLite would otherwise walk every run ever recorded.
        queued: dict[str, int] = {}
        for index, part in QUEUE_PARTS:
            for name, count in self.conn.execute(
                    f"SELECT workflow, count(*) FROM runs INDEXED BY {index} WHERE {part}"
                    " GROUP BY workflow"):
                queued[name] = queued.get(name, 0) + count
        return [HeldByLimit(name, limit, running.get(name, 0), queued[name])
                for name, limit in sorted(limits.items())
                if queued.get(name) and running.get(name, 0) >= limit]

    def next_promotion_at(self) -> datetime | None:
        row = self.conn.execute(
            "SELECT min(promote_at) FROM runs WHERE state = 'queued' AND promote_at IS NOT NULL"
        ).fetchone()
        return from_iso(row[0])

    def next_ready_at(self, mode: Mode, now: datetime) -> datetime | None:
        row = self.conn.execute(
            f"SELECT min(not_before) FROM runs INDEXED BY runs_waiting WHERE {DEFERRED_SQL}"
            " AND mode = ? AND not_before > ?", (mode.value, to_iso(now)),
        ).fetchone()
        return from_iso(row[0])

    def typical_duration(self, workflow: str, sample: int = 20) -> timedelta | None:
        rows = self.conn.execute(
            "SELECT duration_s FROM runs WHERE workflow = ? AND state = 'succeeded'"
            " AND duration_s IS NOT NULL ORDER BY id DESC LIMIT ?", (workflow, sample),
        ).fetchall()
        if not rows:
            return None
        return timedelta(seconds=median(row[0] for row in rows))

    def recent_successes(self, workflow: str, mode: Mode | None = None,
                         limit: int = 50) -> list[RunSample]:
        by_mode = "" if mode is None else " AND mode = ?"
        rows = self.conn.execute(
            "SELECT finished_at, duration_s, coalesce(cpu_user_s, 0) + coalesce(cpu_system_s, 0),"
            " energy_j FROM runs WHERE workflow = ? AND state = 'succeeded'"
            f" AND duration_s IS NOT NULL AND finished_at IS NOT NULL{by_mode}"
            " ORDER BY id DESC LIMIT ?",
            (workflow, *(() if mode is None else (mode.value,)), limit),
        ).fetchall()
        return [RunSample(from_iso(str(at)), duration, cpu, energy)
                for at, duration, cpu, energy in rows]

    def awaited(self, workflows: Sequence[str]) -> list[Run]:
        if not workflows:
            return []
        rows = self.conn.execute(
            f"{SELECT_RUN} WHERE state IN ('queued', 'running')"
            f" AND workflow IN ({_marks(workflows)}) AND (deadline IS NOT NULL"
            " OR (state = 'queued' AND trigger IN ('schedule', 'catch-up'))) ORDER BY id",
            tuple(workflows))
        return [_run(row) for row in rows]

    def has_pending_recurring(self, workflow: str) -> bool:
        row = self.conn.execute(
            "SELECT 1 FROM runs WHERE workflow = ? AND state IN ('queued', 'running')"
            " AND trigger IN ('schedule', 'catch-up', 'retry') LIMIT 1", (workflow,)).fetchone()
        return row is not None

    def finished_before(self, cutoff: datetime, *, workflow: str | None = None,
                        limit: int) -> list[int]:
        only, args = ("AND workflow = ?", [workflow]) if workflow else ("", [])
        return [row[0] for row in self.conn.execute(
            f"SELECT id FROM runs INDEXED BY runs_finished WHERE finished_at < ? AND {FINISHED}"
            f" {only} ORDER BY finished_at LIMIT ?", [to_iso(cutoff), *args, limit])]

    def beyond_newest(self, workflow: str, keep: int, *, limit: int) -> list[int]:
        oldest_kept = self.conn.execute(
            f"SELECT id FROM runs WHERE workflow = ? AND {FINISHED} ORDER BY id DESC"
            " LIMIT 1 OFFSET ?", (workflow, keep - 1)).fetchone()
        if oldest_kept is None:
            return []
        return [row[0] for row in self.conn.execute(
            f"SELECT id FROM runs WHERE workflow = ? AND id < ? AND {FINISHED} ORDER BY id"
            " LIMIT ?", (workflow, oldest_kept[0], limit))]

    def oldest_finished_at(self) -> datetime | None:
        # Only finished runs have a finish time: SQLite reads this off runs_finished's end.
        return from_iso(self.conn.execute("SELECT min(finished_at) FROM runs").fetchone()[0])

    def unfinished_count(self, ids: range) -> int:
        return self.conn.execute(
            "SELECT count(*) FROM runs WHERE id BETWEEN ? AND ?"
            " AND state IN ('queued', 'running')", (ids.start, ids.stop - 1)).fetchone()[0]

    def last_finished_at(self, ids: range) -> datetime | None:
        return from_iso(self.conn.execute(
            "SELECT max(finished_at) FROM runs WHERE id BETWEEN ? AND ?",
            (ids.start, ids.stop - 1)).fetchone()[0])

    def _has_ready_run(self, mode: Mode, stamp: str) -> bool:
        # A read first: the daemon asks every idle pool on every wake-up, and most of the time
        # the answer is no; a write transaction just to learn that would take the database lock.
        # One statement reading the heads of two indexes, however many runs wait: is a run
        # ready now, and has the earliest deferred run's time come.
        ready_now, ripe = self.conn.execute(
            f"SELECT EXISTS (SELECT 1 FROM runs INDEXED BY runs_ready WHERE {READY_NOW_SQL}"
            f" AND mode = ?), ({FIRST_DEFERRED_SQL}) <= ?",
            (mode.value, mode.value, stamp)).fetchone()
        return bool(ready_now or ripe)


class _Claim:
    """The claim of ready runs of one mode, in the ready queue's order, inside the caller's
    write transaction. `values`: claimed_at, pool, worker, batch_id to set."""

    def __init__(self, conn: sqlite3.Connection, mode: Mode, stamp: str, values: tuple) -> None:
        self.conn = conn
        self.mode = mode
        self.stamp = stamp
        self.values = values

    def best(self, limit: int, skipped: Sequence[str] = ()) -> list[Any]:
        """Up to `limit` of the first ready runs, but none of the `skipped` workflows'.

        The best of the runs ready now and, if any deferred run's time has come, the best of
        those, each read off the head of an index in the queue's order, merged."""
        skip = f" AND workflow NOT IN ({_marks(skipped)})" if skipped else ""
        ready_now = (f"INDEXED BY runs_ready WHERE {READY_NOW_SQL} AND mode = ?{skip}"
                     f" ORDER BY {CLAIM_ORDER_SQL} LIMIT ?")
        args: list[Any] = [self.mode.value, *skipped, limit]
        ripe_index = self._ripe_index()
        if ripe_index is None:
            chosen = f"SELECT id FROM runs {ready_now}"
        else:
            ripe = (f"{_CANDIDATES} INDEXED BY {ripe_index} WHERE {DEFERRED_SQL} AND mode = ?"
                    f" AND not_before <= ?{skip} ORDER BY {CLAIM_ORDER_SQL} LIMIT ?")
            chosen = (f"SELECT id FROM (SELECT * FROM ({_CANDIDATES} {ready_now})"
                      f" UNION ALL SELECT * FROM ({ripe}))"
                      " ORDER BY rank_deadline, priority_rank, id LIMIT ?")
            args += [self.mode.value, self.stamp, *skipped, limit, limit]
        rows = self.conn.execute(
            "UPDATE runs SET state = 'running', claimed_at = ?, pool = ?, worker = ?,"
            f" batch_id = ? WHERE id IN ({chosen}) RETURNING {CLAIMED_COLUMNS}",
            (*self.values, *args)).fetchall()
        return _settle_damaged(self.conn, rows, self.stamp)

    def _ripe_index(self) -> str | None:
        """Which index the deferred runs whose time has come are best read from: none if
        there are none; runs_waiting (then sorted) if they are few; runs_deferred, in the
        queue's order, if they are many (the window has opened on a backlog)."""
        if not _first_ripe(self.conn, self.mode, self.stamp):
            return None
        ripe = self.conn.execute(
            "SELECT count(*) FROM (SELECT 1 FROM runs INDEXED BY runs_waiting"
            f" WHERE {DEFERRED_SQL} AND mode = ? AND not_before <= ? LIMIT ?)",
            (self.mode.value, self.stamp, RIPE_SORTED_AT_MOST + 1)).fetchone()[0]
        return "runs_waiting" if ripe <= RIPE_SORTED_AT_MOST else "runs_deferred"

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
                f" worker = NULL, batch_id = NULL WHERE id IN ({_marks(over)})", over)
        return claimed


# A claim candidate with its place in the queue's order.
_CANDIDATES = (f"SELECT id, coalesce(deadline, '{NO_DEADLINE}') AS rank_deadline, priority_rank"
               " FROM runs")


# The earliest `not_before` of a mode's deferred runs: the head of runs_waiting.
FIRST_DEFERRED_SQL = (f"SELECT min(not_before) FROM runs INDEXED BY runs_waiting"
                      f" WHERE {DEFERRED_SQL} AND mode = ?")


def _first_ripe(conn: sqlite3.Connection, mode: Mode, stamp: str) -> bool:
    """Whether a deferred run of `mode` may start at `stamp`."""
    first = conn.execute(FIRST_DEFERRED_SQL, (mode.value,)).fetchone()[0]
    return first is not None and first <= stamp



def _workflow_rooms(conn: sqlite3.Connection) -> dict[str, int]:
    """How many more runs each workflow with a `max_concurrent` may have running now. Read
    inside the claim's transaction; counting reads only the running runs (their index)."""
    limits = conn.execute(
        "SELECT name, max_concurrent FROM workflows WHERE max_concurrent IS NOT NULL").fetchall()
    if not limits:
        return {}
    running = dict(conn.execute(
        "SELECT workflow, count(*) FROM runs WHERE state = 'running' GROUP BY workflow"))
    return {name: limit - running.get(name, 0) for name, limit in limits}


def _within_rooms(conn: sqlite3.Connection, run_ids: Sequence[int],
                  rooms: dict[str, int]) -> list[int]:
    """Those of these runs their workflows' rooms let start, first asked first."""
    rows = conn.execute(f"SELECT id, workflow FROM runs WHERE id IN ({_marks(run_ids)})"
                        " AND state = 'queued' ORDER BY id", run_ids).fetchall()
    kept, _ = keep_within(rows, rooms)
    return [row[0] for row in kept]


def insert_runs(store: Database, columns: Sequence[str], values: Iterable[tuple]) -> range:
    """Rows of the runs table given as tuples in `columns` order, in one transaction; their ids.

    Ids are consecutive: AUTOINCREMENT hands out max+1 and the transaction holds the write
    lock. Besides `enqueue`, for seeding history (the bench, tests): SQLite only."""
    sql = (f"INSERT INTO runs ({', '.join(columns)}) "
           f"VALUES ({', '.join('?' for _ in columns)})")
    with store.write() as conn:
        before = conn.total_changes
        conn.executemany(sql, values)
        count = conn.total_changes - before
        last = conn.execute("SELECT last_insert_rowid()").fetchone()[0]
        ids = range(last - count + 1, last + 1) if count else range(0)
        if ids and "finished_at" in columns:  # history written after its hours were summarized
            mark_inserted(conn, ids)
    return ids


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
            to_iso(planned.deadline), RunState.QUEUED.value, to_iso(planned.enqueued_at),
            to_iso(planned.not_before), to_iso(planned.promote_at), planned.attempt,
            planned.retry_of, planned.rerun_of, planned.schedule_id, planned.not_before_reason,
            planned.followed)


# Claimed rows' texts to their members by lookup: an enum's call costs as much as the rest of
# a claimed run's conversion (the rows were checked by `_settle_damaged`).
_MODE_OF = {mode.value: mode for mode in Mode}
_PRIORITY_OF = {priority.value: priority for priority in CostPriority}
_RANK_OF = {priority.value: priority.rank for priority in CostPriority}


def _queue_order(row: Any) -> tuple[str, int, int]:
    """The ready queue's order, for rows of CLAIMED_COLUMNS."""
    return (row[4] or NO_DEADLINE, _RANK_OF[row[3]], row[0])


def _claimed_runs(rows: list[Any], claimed_at: datetime) -> list[ClaimedRun]:
    """Rows of CLAIMED_COLUMNS as claimed runs; a time shared by several (runs submitted
    together were enqueued at one moment) read once."""
    times: dict[str, datetime] = {}
    runs = []
    for run_id, workflow, mode, priority, deadline, enqueued_at in rows:
        for text in (deadline, enqueued_at):
            if text is not None and text not in times:
                times[text] = from_iso(text)
        runs.append(ClaimedRun(run_id, workflow, _MODE_OF[mode], _PRIORITY_OF[priority],
                               None if deadline is None else times[deadline],
                               times[enqueued_at], claimed_at))
    return runs



def _marks(values: Sequence[Any]) -> str:
    return ", ".join("?" * len(values))



START_SET_SQL = "started_at = ?, pid = ?, log_path = ?, off_peak = ?, queue_wait_s = ?"
END_SET_SQL = ("state = ?, finished_at = ?, exit_code = ?, error = ?, cpu_user_s = ?,"
               " cpu_system_s = ?, peak_rss_kb = ?, duration_s = ?, deadline_met = ?, energy_j = ?")


def _start_values(start: RunStart) -> tuple:
    """The values of START_SET_SQL."""
    return (to_iso(start.at), start.pid, start.log_path, start.off_peak,
            seconds_between(start.enqueued_at, start.at))


def _end_values(end: RunEnd) -> tuple:
    """The values of END_SET_SQL, then the run's id."""
    outcome = end.outcome
    met = None if end.deadline is None else end.at <= end.deadline
    return (outcome.state.value, to_iso(end.at), outcome.exit_code, outcome.error,
            outcome.cpu_user_s, outcome.cpu_system_s, outcome.peak_rss_kb,
            end.duration_s(), met, outcome.energy_j, end.run_id)


def _settle_damaged(conn: sqlite3.Connection, rows: list[Any], stamp: str | None
                    ) -> list[Any]:
    """The claimed rows (of CLAIMED_COLUMNS) but those changed by other means, which are
    settled as failed: left queued, they would come first again at every claim."""
    good = []
    for row in rows:
        if row[2] in MODES and row[3] in PRIORITIES:
            good.append(row)
            continue
        problem = damage(row[0], dict(zip(CLAIMED_NAMES, row, strict=True)))
        log.error("%s; settled as failed", problem)
        conn.execute("UPDATE runs SET state = 'failed', finished_at = ?, error = ? WHERE id = ?",
                     (stamp, str(problem), row[0]))
    if stamp is not None and len(good) < len(rows):
        mark_late_finishes(conn, [from_iso(stamp)])
    return good


def _run(row: Any) -> Run:
    """A row of SELECT_RUN as a Run (columns in RUN_FIELDS order); a value easyflow never
    writes is one line naming the run and the field."""
    try:
        return _run_of(row)
    except (ValueError, TypeError):
        problem = damage(row[0], dict(zip(RUN_FIELDS, row, strict=True)))
        if problem is None:
            raise
        raise problem from None


def _run_of(row: Any) -> Run:
    (run_id, workflow, trigger, mode, reason, priority, deadline, state, enqueued_at,
     not_before, promote_at, claimed_at, started_at, finished_at, *middle, off_peak,
     deadline_met, energy_j, error, log_path, not_before_reason) = row
    (exit_code, attempt, retry_of, rerun_of, followed, schedule_id, batch_id, pool, worker, pid,
     pgid, cpu_user_s, cpu_system_s, peak_rss_kb, queue_wait_s, duration_s) = middle
    return Run(
        run_id, workflow, Trigger(trigger), Mode(mode), ModeReason(reason),
        CostPriority(priority), from_iso(deadline), RunState(state), from_iso(enqueued_at),
        from_iso(not_before), from_iso(promote_at), from_iso(claimed_at), from_iso(started_at),
        from_iso(finished_at), exit_code, attempt, retry_of, rerun_of, _flag(followed),
        schedule_id, batch_id, PoolName(pool) if pool is not None else None, worker, pid, pgid,
        cpu_user_s, cpu_system_s, peak_rss_kb, queue_wait_s, duration_s, _flag(off_peak),
        _flag(deadline_met), energy_j, error, log_path, not_before_reason)


def _flag(value: int | None) -> bool | None:
    return None if value is None else bool(value)
