"""The durable run queue: the `runs` table and its transitions, each one short transaction.

    queued ──claim──▶ running ──finish──▶ succeeded | failed | timed_out | cancelled
       └────────────────cancel────────────────▶ cancelled

`plan_run` decides a new run's mode, deadline, not-before and promotion time (pure); the other
functions apply transitions atomically. Within a mode, runs are served earliest deadline first,
then by cost priority (high, normal, low), then first in.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from easyflow_cli.core.errors import BadInput, NotFound
from easyflow_cli.core.model import CostPriority, Mode, ModeReason, Outcome, RunState, Trigger
from easyflow_cli.core.modes import promotion_time, resolve_mode, should_promote
from easyflow_cli.core.offpeak import OffPeakWindow
from easyflow_cli.core.spec import WorkflowSpec
from easyflow_cli.core.stats import median
from easyflow_cli.core.timeutil import from_iso, to_iso
from easyflow_cli.storage.store import Store, fits_sqlite_integer

RUN_FIELDS = (
    "id", "workflow", "trigger", "mode", "mode_reason", "cost_priority", "deadline", "state",
    "enqueued_at", "not_before", "promote_at", "claimed_at", "started_at", "finished_at",
    "exit_code", "attempt", "retry_of", "schedule_id", "batch_id", "pool", "worker", "pid", "pgid",
    "cpu_user_s", "cpu_system_s", "peak_rss_kb", "queue_wait_s", "duration_s", "off_peak",
    "deadline_met", "energy_j", "error", "log_path",
)


# What the daemon needs of a run it hands to a worker (and later records the start and end of).
HANDED_OVER_FIELDS = ("id", "workflow", "mode", "cost_priority", "deadline", "enqueued_at",
                      "claimed_at")


@dataclass(frozen=True)
class QueuePolicy:
    """The parts of the daemon config that decide how a new run waits."""

    promote_within: timedelta = timedelta(hours=1)
    off_peak: OffPeakWindow | None = None



def plan_run(
    spec: WorkflowSpec,
    *,
    trigger: Trigger,
    now: datetime,
    policy: QueuePolicy,
    override: Mode | None = None,
    deadline: datetime | None = None,
    deadline_after: float | None = None,
    typical_duration: timedelta | None = None,
    not_before: datetime | None = None,
) -> dict[str, Any]:
    """The row for a new queued run (pure: no I/O)."""
    if deadline is None and (deadline_after or spec.deadline_after):
        deadline = now + timedelta(seconds=deadline_after or spec.deadline_after)
    if deadline is None:
        deadline = spec.deadline
    resolution = resolve_mode(
        trigger=trigger, now=now, override=override, workflow_mode=spec.execution_mode,
        deadline=deadline, promote_within=policy.promote_within,
    )
    mode, reason = resolution.mode, resolution.reason
    if should_promote(mode, deadline, now, policy.promote_within, typical_duration):
        mode, reason = Mode.REAL_TIME, ModeReason.PROMOTED
    if mode == Mode.ECO and policy.off_peak is not None:
        not_before = _off_peak_start(policy.off_peak, now, deadline, typical_duration, not_before)
    promote_at = None
    if mode != Mode.REAL_TIME:
        promote_at = promotion_time(deadline, policy.promote_within, typical_duration)
    return {
        "workflow": spec.name, "trigger": trigger.value, "mode": mode.value,
        "mode_reason": reason.value, "cost_priority": spec.cost_priority.value,
        "priority_rank": CostPriority(spec.cost_priority).rank, "deadline": to_iso(deadline),
        "state": RunState.QUEUED.value, "enqueued_at": to_iso(now),
        "not_before": to_iso(not_before), "promote_at": to_iso(promote_at),
    }


def _off_peak_start(window, now, deadline, typical, not_before):
    """Eco work waits for the window, unless waiting would miss the deadline."""
    start = window.next_start(now)
    if not_before is not None and not_before > start:
        start = not_before
    if start <= now:
        return not_before
    if deadline is not None and start + (typical or timedelta(0)) > deadline:
        return not_before
    return start


def replan_off_peak(store: Store, policy: QueuePolicy, now: datetime,
                    run_ids: list[int] | None = None) -> int:
    """Re-decide when waiting eco runs may start: all of them after the off-peak window
    changed, or just `run_ids` (runs a CLI planned with a config the daemon may not share)."""
    sql = ("SELECT id, deadline FROM runs WHERE state = 'queued' AND mode = 'eco'"
           " AND trigger != 'retry'")
    args: list[int] = []
    if run_ids is not None:
        sql += f" AND id IN ({', '.join('?' * len(run_ids))})"
        args = list(run_ids)
    rows = store.conn.execute(sql, args).fetchall()
    if not rows:
        return 0
    changes = []
    for row in rows:
        start = None
        if policy.off_peak is not None:
            start = _off_peak_start(policy.off_peak, now, from_iso(row["deadline"]), None, None)
        changes.append((to_iso(start), row["id"]))
    with store.write() as conn:
        conn.executemany("UPDATE runs SET not_before = ? WHERE id = ? AND state = 'queued'",
                         changes)
    return len(changes)


def typical_duration(store: Store, workflow: str, sample: int = 20) -> timedelta | None:
    """The median duration of this workflow's recent successful runs, if it has any."""
    rows = store.conn.execute(
        "SELECT duration_s FROM runs WHERE workflow = ? AND state = 'succeeded'"
        " AND duration_s IS NOT NULL ORDER BY id DESC LIMIT ?", (workflow, sample),
    ).fetchall()
    if not rows:
        return None
    return timedelta(seconds=median(r[0] for r in rows))


def enqueue_run(store: Store, row: dict[str, Any], **extra: Any) -> dict[str, Any]:
    """Insert a planned run; returns the stored record."""
    values = {**row, **extra}
    columns = ", ".join(values)
    marks = ", ".join("?" for _ in values)
    with store.write() as conn:
        run_id = conn.execute(
            f"INSERT INTO runs ({columns}) VALUES ({marks})", tuple(values.values())
        ).lastrowid
    return get_run(store, run_id)


def enqueue_runs(store: Store, rows: Sequence[dict[str, Any]]) -> range:
    """Insert many planned runs (all with the same keys) in one transaction; returns their ids."""
    if not rows:
        return range(0)
    columns = list(rows[0])
    return insert_runs(store, columns, (tuple(row[c] for c in columns) for row in rows))


def insert_runs(store: Store, columns: Sequence[str], values: Iterable[tuple]) -> range:
    """Bulk insert of run rows given as tuples in `columns` order, in one transaction.

    Ids are consecutive: AUTOINCREMENT hands out max+1 and the transaction holds the write lock.
    """
    sql = (f"INSERT INTO runs ({', '.join(columns)}) "
           f"VALUES ({', '.join('?' for _ in columns)})")
    with store.write() as conn:
        before = conn.total_changes
        conn.executemany(sql, values)
        count = conn.total_changes - before
        last = conn.execute("SELECT last_insert_rowid()").fetchone()[0]
    return range(last - count + 1, last + 1)


def unfinished_count(store: Store, ids: range) -> int:
    """How many of these runs are still queued or running."""
    return store.conn.execute(
        "SELECT count(*) FROM runs WHERE id BETWEEN ? AND ? AND state IN ('queued', 'running')",
        (ids.start, ids.stop - 1)).fetchone()[0]


def last_finished_at(store: Store, ids: range) -> datetime | None:
    return from_iso(store.conn.execute(
        "SELECT max(finished_at) FROM runs WHERE id BETWEEN ? AND ?",
        (ids.start, ids.stop - 1)).fetchone()[0])


def get_run(store: Store, run_id: int) -> dict[str, Any]:
    row = None
    if fits_sqlite_integer(run_id):
        row = store.conn.execute("SELECT * FROM runs WHERE id = ?", (run_id,)).fetchone()
    if row is None:
        raise NotFound(f"unknown run {run_id} (see `easyflow runs list`)")
    return run_record(row)


def run_record(row) -> dict[str, Any]:
    """A run as the CLI and JSON show it: the public fields, in a stable order."""
    record = {name: row[name] for name in RUN_FIELDS}
    for flag in ("off_peak", "deadline_met"):
        if record[flag] is not None:
            record[flag] = bool(record[flag])
    return record


def list_runs(store: Store, *, workflow: str | None = None, state: str | None = None,
              limit: int = 50) -> list[dict[str, Any]]:
    clauses, args = [], []
    if workflow:
        clauses.append("workflow = ?")
        args.append(workflow)
    if state:
        clauses.append("state = ?")
        args.append(RunState(state).value)
    where = f" WHERE {' AND '.join(clauses)}" if clauses else ""
    rows = store.conn.execute(
        f"SELECT * FROM runs{where} ORDER BY id DESC LIMIT ?", (*args, limit)
    ).fetchall()
    return [run_record(r) for r in rows]


def claim_run(store: Store, run_id: int, *, now: datetime, pool: str, worker: str) -> bool:
    """Claim one queued run by id (the foreground runner does this); False if someone else did."""
    with store.write() as conn:
        return conn.execute(
            "UPDATE runs SET state = 'running', claimed_at = ?, pool = ?, worker = ?"
            " WHERE id = ? AND state = 'queued'", (to_iso(now), pool, worker, run_id),
        ).rowcount == 1


def claim_next_runs(store: Store, mode: Mode, *, now: datetime, limit: int, pool: str,
                    worker: str, batch_id: str | None = None) -> list[dict[str, Any]]:
    """Atomically claim up to `limit` ready runs of one mode, best first."""
    stamp = to_iso(now)
    if not _has_ready_run(store, mode, stamp):
        return []
    with store.write() as conn:
        return _claim(conn, mode, stamp, limit, pool, worker, batch_id)


def claim_runs_for_workers(store: Store, mode: Mode, *, now: datetime, pool: str,
                           rooms: Sequence[tuple[str, int]]) -> list[list[dict[str, Any]]]:
    """Claim ready runs of one mode for several workers in one transaction.

    `rooms` is (worker name, how many it may take); the answer lists each one's runs. They are
    dealt in turn, best first, so a few runs spread over the workers instead of piling onto
    the first. Each run has only the HANDED_OVER_FIELDS: this is the daemon's hot path.
    """
    stamp = to_iso(now)
    if not rooms or not _has_ready_run(store, mode, stamp):
        return [[] for _ in rooms]
    with store.write() as conn:
        claimed = _claim(conn, mode, stamp, sum(room for _, room in rooms), pool, None, None,
                         HANDED_OVER_FIELDS)
        dealt = _deal(claimed, [room for _, room in rooms])
        conn.executemany("UPDATE runs SET worker = ? WHERE id = ?",
                         [(name, run["id"]) for (name, _), runs in zip(rooms, dealt, strict=True)
                          for run in runs])
    for (name, _), runs in zip(rooms, dealt, strict=True):
        for run in runs:
            run["worker"] = name
    return dealt


def _deal(runs: list[dict[str, Any]], rooms: list[int]) -> list[list[dict[str, Any]]]:
    hands: list[list[dict[str, Any]]] = [[] for _ in rooms]
    left = list(rooms)
    turn = 0
    for run in runs:  # there are at most sum(rooms) of them
        while not left[turn]:
            turn = (turn + 1) % len(left)
        hands[turn].append(run)
        left[turn] -= 1
        turn = (turn + 1) % len(left)
    return hands


def _claim(conn, mode: Mode, stamp: str, limit: int, pool: str, worker: str | None,
           batch_id: str | None, fields: Sequence[str] = RUN_FIELDS) -> list[dict[str, Any]]:
    rows = conn.execute(
        "UPDATE runs SET state = 'running', claimed_at = ?, pool = ?, worker = ?,"
        " batch_id = ? WHERE id IN (SELECT id FROM runs WHERE state = 'queued'"
        " AND mode = ? AND (not_before IS NULL OR not_before <= ?)"
        " ORDER BY coalesce(deadline, '9999'), priority_rank, id LIMIT ?)"
        f" RETURNING {', '.join(fields)}",
        (stamp, pool, worker, batch_id, Mode(mode).value, stamp, limit),
    ).fetchall()
    records = ([run_record(r) for r in rows] if fields is RUN_FIELDS
               else [dict(zip(fields, r, strict=True)) for r in rows])
    # RETURNING gives no order; the best run must be the first one to start.
    records.sort(key=lambda r: (r["deadline"] or "9999", CostPriority(r["cost_priority"]).rank,
                                r["id"]))
    return records


def _has_ready_run(store: Store, mode: Mode, stamp: str) -> bool:
    # A read first: the daemon asks every idle pool on every wake-up, and most of the time the
    # answer is no; a write transaction just to learn that would take the database lock.
    return store.conn.execute(
        "SELECT 1 FROM runs WHERE state = 'queued' AND mode = ?"
        " AND (not_before IS NULL OR not_before <= ?) LIMIT 1",
        (Mode(mode).value, stamp)).fetchone() is not None


@dataclass(frozen=True)
class RunStart:
    """A handed-over run's first step is starting (as its worker reported)."""

    run_id: int
    at: datetime
    enqueued_at: str  # known to whoever claimed the run: saves a read per run
    pid: int | None = None
    log_path: str | None = None
    off_peak: bool | None = None


@dataclass(frozen=True)
class RunEnd:
    """A started run ended: a shortcut of `finish_run` for whoever knows the claimed run."""

    run_id: int
    outcome: Outcome
    at: datetime
    began_at: datetime  # started_at, else claimed_at: where its duration counts from
    deadline: str | None = None


def mark_started(store: Store, run_id: int, *, now: datetime, pid: int | None,
                 log_path: str | None, off_peak: bool | None = None) -> None:
    with store.write() as conn:
        row = conn.execute("SELECT enqueued_at FROM runs WHERE id = ?", (run_id,)).fetchone()
        if row is not None:
            mark_runs_started(store, [RunStart(run_id, now, row[0], pid, log_path, off_peak)])


def mark_runs_started(store: Store, starts: Sequence[RunStart]) -> None:
    with store.write() as conn:
        conn.executemany(
            "UPDATE runs SET started_at = ?, pid = ?, log_path = ?, off_peak = ?,"
            " queue_wait_s = ? WHERE id = ?",
            [(to_iso(s.at), s.pid, s.log_path, s.off_peak, _seconds_between(s.enqueued_at, s.at),
              s.run_id) for s in starts])


def _seconds_between(start_iso: str | None, end: datetime) -> float | None:
    if start_iso is None:
        return None
    return round((end - from_iso(start_iso)).total_seconds(), 6)


def record_step_process(store: Store, run_id: int, pgid: int) -> None:
    """The process group of the step now running, so a crash can be cleaned up after."""
    with store.write() as conn:
        conn.execute("UPDATE runs SET pgid = ? WHERE id = ?", (pgid, run_id))


def finish_runs(store: Store, ends: Sequence[RunEnd]) -> list[int]:
    """Record many ends in one statement; returns the ids that had already ended (cancelled),
    which keep their state."""
    with store.write() as conn:
        ids = [end.run_id for end in ends]
        running = {row[0] for row in conn.execute(
            f"SELECT id FROM runs WHERE state = 'running' AND id IN ({','.join('?' * len(ids))})",
            ids)}
        conn.executemany(
            "UPDATE runs SET state = ?, finished_at = ?, exit_code = ?, error = ?,"
            " cpu_user_s = ?, cpu_system_s = ?, peak_rss_kb = ?, duration_s = ?,"
            " deadline_met = ?, energy_j = ? WHERE id = ?",
            [_end_values(end) for end in ends if end.run_id in running])
    return [run_id for run_id in ids if run_id not in running]


def _end_values(end: RunEnd) -> tuple:
    stamp, outcome = to_iso(end.at), end.outcome
    met = None if end.deadline is None else stamp <= end.deadline
    return (RunState(outcome.state).value, stamp, outcome.exit_code, outcome.error,
            outcome.cpu_user_s, outcome.cpu_system_s, outcome.peak_rss_kb,
            round((end.at - end.began_at).total_seconds(), 6), met, outcome.energy_j, end.run_id)


def finish_run(store: Store, run_id: int, outcome: Outcome, *, now: datetime) -> dict[str, Any]:
    """Record how a running run ended. A run already finished (cancelled) keeps its state."""
    stamp = to_iso(now)
    with store.write() as conn:
        row = conn.execute("SELECT started_at, claimed_at, deadline FROM runs WHERE id = ?",
                           (run_id,)).fetchone()
        duration = _seconds_between(row["started_at"] or row["claimed_at"], now) if row else None
        met = None if not row or row["deadline"] is None else stamp <= row["deadline"]
        conn.execute(
            "UPDATE runs SET state = ?, finished_at = ?, exit_code = ?, error = ?,"
            " cpu_user_s = ?, cpu_system_s = ?, peak_rss_kb = ?, duration_s = ?,"
            " deadline_met = ?, energy_j = ? WHERE id = ? AND state = 'running'",
            (RunState(outcome.state).value, stamp, outcome.exit_code, outcome.error,
             outcome.cpu_user_s, outcome.cpu_system_s, outcome.peak_rss_kb, duration, met,
             outcome.energy_j, run_id),
        )
    return get_run(store, run_id)


def cancel_run(store: Store, run_id: int, *, now: datetime) -> dict[str, Any]:
    """Cancel a queued run at once. A running run is only marked by whoever executes it."""
    run = get_run(store, run_id)
    if RunState(run["state"]).finished:
        raise BadInput(f"run {run_id} already ended ({run['state']})")
    with store.write() as conn:
        conn.execute(
            "UPDATE runs SET state = 'cancelled', finished_at = ?, error = 'cancelled by user'"
            " WHERE id = ? AND state = 'queued'", (to_iso(now), run_id),
        )
    return get_run(store, run_id)


def promote_due_runs(store: Store, *, now: datetime) -> list[int]:
    """Waiting runs whose promotion time has come become real-time now (reason `promoted`)."""
    due = next_promotion_at(store)
    if due is None or due > now:
        return []  # checked by a read: this runs on every wake-up of the daemon
    with store.write() as conn:
        rows = conn.execute(
            "UPDATE runs SET mode = 'real-time', mode_reason = 'promoted', not_before = NULL,"
            " promote_at = NULL WHERE state = 'queued' AND promote_at IS NOT NULL"
            " AND promote_at <= ? RETURNING id", (to_iso(now),),
        ).fetchall()
    return [r[0] for r in rows]


def next_promotion_at(store: Store) -> datetime | None:
    row = store.conn.execute(
        "SELECT min(promote_at) FROM runs WHERE state = 'queued' AND promote_at IS NOT NULL"
    ).fetchone()
    return from_iso(row[0])


def next_ready_at(store: Store, mode: Mode, now: datetime) -> datetime | None:
    """When the earliest deferred run of a mode becomes ready (off-peak or retry backoff)."""
    row = store.conn.execute(
        "SELECT min(not_before) FROM runs WHERE state = 'queued' AND mode = ?"
        " AND not_before > ?", (Mode(mode).value, to_iso(now)),
    ).fetchone()
    return from_iso(row[0])


def running_runs(store: Store) -> list[dict[str, Any]]:
    rows = store.conn.execute("SELECT * FROM runs WHERE state = 'running' ORDER BY id")
    return [run_record(r) for r in rows]


def requeue_run(store: Store, run_id: int, note: str | None = None) -> None:
    """Put a claimed run back in the queue, as if it had never been handed out."""
    requeue_runs(store, [run_id], note)


def requeue_runs(store: Store, run_ids: Iterable[int], note: str | None = None) -> None:
    with store.write() as conn:
        conn.executemany(
            "UPDATE runs SET state = 'queued', claimed_at = NULL, started_at = NULL, pool = NULL,"
            " worker = NULL, batch_id = NULL, pid = NULL, pgid = NULL, queue_wait_s = NULL,"
            " error = ? WHERE id = ? AND state = 'running'",
            [(note, run_id) for run_id in run_ids])


def plan_retry(run: dict[str, Any], spec: WorkflowSpec, now: datetime) -> dict[str, Any] | None:
    """The next attempt of a failed run, if the workflow allows one more (pure)."""
    if run["attempt"] > spec.retries:
        return None
    backoff = timedelta(seconds=spec.retry_backoff or 0)
    return {
        "workflow": run["workflow"], "trigger": Trigger.RETRY.value, "mode": run["mode"],
        "mode_reason": run["mode_reason"], "cost_priority": run["cost_priority"],
        "priority_rank": CostPriority(run["cost_priority"]).rank, "deadline": run["deadline"],
        "state": RunState.QUEUED.value, "enqueued_at": to_iso(now),
        "not_before": to_iso(now + backoff) if backoff else None,
        "promote_at": run["promote_at"], "attempt": run["attempt"] + 1,
        "retry_of": run["id"], "schedule_id": run["schedule_id"],
    }


def has_pending_recurring_run(store: Store, workflow: str) -> bool:
    """Is a scheduled (or retried) run of this workflow still queued or running?"""
    row = store.conn.execute(
        "SELECT 1 FROM runs WHERE workflow = ? AND state IN ('queued', 'running')"
        " AND trigger IN ('schedule', 'catch-up', 'retry') LIMIT 1", (workflow,)).fetchone()
    return row is not None


def queue_depths(store: Store) -> dict[str, int]:
    depths = {mode.value: 0 for mode in Mode}
    for mode, count in store.conn.execute(
        "SELECT mode, count(*) FROM runs WHERE state = 'queued' GROUP BY mode"
    ):
        depths[mode] = count
    return depths
