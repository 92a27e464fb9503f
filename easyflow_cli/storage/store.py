"""The SQLite store: connection settings, schema migrations, workflows and schedules.

One database file in the state directory, owner-only, in WAL mode with a busy timeout; what
may be opened as one (created only when missing, refused when not ours) is `database_file.py`.
The run queue's transactions live in `sqlite_queue.py` (`store.queue`), the daemon's published
policy in `daemon_policy.py`, the tokens marking runs' processes in `daemon_tokens.py`;
everything else that touches SQL lives here.
"""

from __future__ import annotations

import functools
import json
import os
import sqlite3
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from easyflow_cli.core.errors import NotFound, shown
from easyflow_cli.core.model import Mode
from easyflow_cli.core.paths import database_path, ensure_state_dir, state_dir
from easyflow_cli.core.spec import ScheduleSpec, WorkflowSpec, spec_from_dict, spec_to_dict
from easyflow_cli.core.timeutil import to_iso
from easyflow_cli.storage import rollups, summaries
from easyflow_cli.storage.database_file import check_integrity, open_database
from easyflow_cli.storage.dialect import SQLITE, Args
from easyflow_cli.storage.live_files import (
    FilesInUse,
    files_in_use,
    refuse_replaced,
    refuse_unshared_log,
)
from easyflow_cli.storage.outbox import Outbox
from easyflow_cli.storage.run_queue import RunQueue
from easyflow_cli.storage.sqlite_outbox import SqliteOutbox
from easyflow_cli.storage.sqlite_queue import (
    CLAIM_ORDER_SQL,
    DEFERRED_SQL,
    READY_NOW_SQL,
    SqliteRunQueue,
    fits_sqlite_integer,
)
from easyflow_cli.storage.summaries import LEFT_QUEUE_SQL, epoch_sql

if TYPE_CHECKING:
    from easyflow_cli.core.config import Config
    from easyflow_cli.core.planning import QueuePolicy

BUSY_TIMEOUT_MS = 30_000
# SQLite copies its write-ahead log back into the database (a checkpoint, with an fsync) inside
# whichever commit makes the log this long: milliseconds added to that one commit. The daemon
# checkpoints in its quiet moments instead; this is the backstop for a long busy spell or no
# daemon at all.
WAL_AUTOCHECKPOINT_PAGES = 10_000
# How long the daemon waits for quiet after some activity before it checkpoints.
CHECKPOINT_WHEN_QUIET_S = 0.5

def _migration_1(db) -> None:
    """Workflows, schedules and runs."""
    db.create_table("workflows", {
        "name": str, "description": str, "execution_mode": str, "cost_priority": str,
        "source_file": str, "content_hash": str, "spec_json": str,
        "added_at": str, "updated_at": str,
    }, pk="name", not_null={"spec_json"})
    # AUTOINCREMENT: schedule and run ids are shown to users and must never be reused.
    db.execute("CREATE TABLE schedules ("
               " id INTEGER PRIMARY KEY AUTOINCREMENT,"
               " workflow TEXT NOT NULL REFERENCES workflows(name), kind TEXT NOT NULL,"
               " expr TEXT NOT NULL, timezone TEXT, mode TEXT, deadline_after_s REAL,"
               " origin TEXT NOT NULL, paused INTEGER NOT NULL DEFAULT 0, created_at TEXT,"
               " last_fire_at TEXT, next_fire_at TEXT)")
    db.execute("CREATE TABLE runs ("
               " id INTEGER PRIMARY KEY AUTOINCREMENT, workflow TEXT NOT NULL,"
               " trigger TEXT NOT NULL, mode TEXT NOT NULL, mode_reason TEXT NOT NULL,"
               " cost_priority TEXT NOT NULL, priority_rank INTEGER NOT NULL,"
               " deadline TEXT, state TEXT NOT NULL, enqueued_at TEXT NOT NULL,"
               " not_before TEXT, promote_at TEXT, claimed_at TEXT, started_at TEXT,"
               " finished_at TEXT, exit_code INTEGER, attempt INTEGER NOT NULL DEFAULT 1,"
               " retry_of INTEGER, schedule_id INTEGER, batch_id TEXT, pool TEXT, worker TEXT,"
               " pid INTEGER, pgid INTEGER, cpu_user_s REAL, cpu_system_s REAL,"
               " peak_rss_kb INTEGER, queue_wait_s REAL, duration_s REAL, off_peak INTEGER,"
               " deadline_met INTEGER, error TEXT, log_path TEXT)")
    # The ready queue: per mode, earliest deadline, then cost priority, then first in.
    db.execute("CREATE INDEX runs_ready ON runs (mode, coalesce(deadline, '9999'),"
               " priority_rank, id) WHERE state = 'queued'")
    db.execute("CREATE INDEX runs_promote ON runs (promote_at) WHERE state = 'queued'")
    db.execute("CREATE INDEX runs_running ON runs (state) WHERE state = 'running'")
    db.execute("CREATE INDEX runs_workflow ON runs (workflow, id)")
    db.execute("CREATE INDEX runs_finished ON runs (finished_at)")
    db["schedules"].create_index(["workflow"])


def _migration_2(db) -> None:
    """Measured energy per run, and an index that lets cost reports read only what they sum."""
    db.execute("ALTER TABLE runs ADD COLUMN energy_j REAL")
    # Mode and tariff first: `report costs` then streams its groups straight off the index.
    db.execute("CREATE INDEX runs_costs ON runs (mode, off_peak, finished_at, workflow,"
               " duration_s, cpu_user_s, cpu_system_s, energy_j) WHERE duration_s IS NOT NULL")


# `epoch_sql`: epoch seconds of a stored time, as the pools report computes them. The pools
# indexes store these values, so reading them costs no date parsing; queries must spell them
# exactly so.
NOT_DISABLED = "workflow NOT IN (SELECT name FROM workflows WHERE disabled = 1)"


def _migration_3(db) -> None:
    """Indexes that let every report stream its groups instead of sorting or fetching runs.

    All are partial on settled runs (duration or finish time recorded), so enqueueing and
    claiming never touch them: each costs one index insert when a run finishes."""
    db.execute("DROP INDEX runs_costs")
    # The day before the finish time: `report costs --by day` streams off the same index.
    db.execute("CREATE INDEX runs_costs ON runs (mode, off_peak, substr(finished_at, 1, 10),"
               " finished_at, workflow, duration_s, cpu_user_s, cpu_system_s, energy_j)"
               " WHERE duration_s IS NOT NULL")
    db.execute("CREATE INDEX runs_costs_workflow ON runs (workflow, mode, off_peak, finished_at,"
               " duration_s, cpu_user_s, cpu_system_s, energy_j) WHERE duration_s IS NOT NULL")
    # Percentiles: each mode's values in order, read to the wanted rank. duration_s is in both
    # because SQLite 3.40 reads it from the table for `duration_s IS NOT NULL` otherwise.
    db.execute("CREATE INDEX runs_durations ON runs (mode, duration_s, finished_at, workflow)"
               " WHERE duration_s IS NOT NULL")
    db.execute("CREATE INDEX runs_waits ON runs (mode, queue_wait_s, finished_at, workflow,"
               " deadline_met, duration_s) WHERE duration_s IS NOT NULL")
    # Pools: runs by the end of their busy or queued time, which `--since` bounds, with those
    # times as epoch seconds; and where the chart begins when no `--since` is given.
    db.execute(f"CREATE INDEX runs_busy ON runs (mode, finished_at, started_at,"
               f" {epoch_sql('started_at')}, {epoch_sql('finished_at')}, pool, workflow)"
               " WHERE finished_at IS NOT NULL")
    db.execute("CREATE INDEX runs_started ON runs (started_at, finished_at, workflow)"
               " WHERE duration_s IS NOT NULL")
    # The columns under coalesce() too: SQLite 3.40 reads a table row for each run otherwise.
    db.execute(f"CREATE INDEX runs_queued_time ON runs (mode, {LEFT_QUEUE_SQL}, enqueued_at,"
               f" {epoch_sql('enqueued_at')}, {epoch_sql(LEFT_QUEUE_SQL)}, workflow,"
               " claimed_at, started_at, finished_at) WHERE finished_at IS NOT NULL")


def _migration_4(db) -> None:
    """The policy the daemon plans runs with, published for the clients that queue runs."""
    db.execute("CREATE TABLE daemon_policy (id INTEGER PRIMARY KEY CHECK (id = 1),"
               " promote_within_s REAL NOT NULL, off_peak TEXT, published_at TEXT NOT NULL)")


def _migration_5(db) -> None:
    """Who led a recorded step's process group: recovery kills a group only if it still is."""
    db.execute("ALTER TABLE runs ADD COLUMN pgid_leader_start INTEGER")
    db.execute("ALTER TABLE runs ADD COLUMN pgid_boot_id TEXT")


def _migration_6(db) -> None:
    """Per workflow: a limit on its runs running at once, and whether it is disabled (kept
    when its file is added again); per schedule: the jitter of its fires."""
    db.execute("ALTER TABLE workflows ADD COLUMN max_concurrent INTEGER")
    db.execute("ALTER TABLE workflows ADD COLUMN disabled INTEGER NOT NULL DEFAULT 0")
    db.execute("ALTER TABLE schedules ADD COLUMN jitter_s REAL")


def _migration_7(db) -> None:
    """Ended runs by workflow, mode and state, for the metrics' `easyflow_runs_total`, without
    reading a table row each (seconds over a million runs) and without a new index entry for
    each run that ends: the state joins the index `report costs --by workflow` streams, which a
    run ending with a duration enters anyway; runs that end without one (cancelled while
    queued) get an index of their own."""
    db.execute("DROP INDEX runs_costs_workflow")
    db.execute("CREATE INDEX runs_costs_workflow ON runs (workflow, mode, off_peak, finished_at,"
               " duration_s, cpu_user_s, cpu_system_s, energy_j, state)"
               " WHERE duration_s IS NOT NULL")
    db.execute("CREATE INDEX runs_ended_unsettled ON runs (workflow, mode, state)"
               " WHERE duration_s IS NULL AND finished_at IS NOT NULL")


def _migration_8(db) -> None:
    """The tokens that mark the processes of runs (storage/daemon_tokens.py)."""
    db.execute("CREATE TABLE daemon_tokens (token TEXT PRIMARY KEY, created_at TEXT NOT NULL)")


def _migration_9(db) -> None:
    """The notification outbox (one row per event and channel, written with the run's end,
    delivered by the daemon) and each workflow's open failure incident."""
    db.execute("CREATE TABLE notifications ("
               " id INTEGER PRIMARY KEY AUTOINCREMENT, event_id TEXT NOT NULL,"
               " event TEXT NOT NULL, workflow TEXT NOT NULL, run_id INTEGER,"
               " channel TEXT NOT NULL, created_at TEXT NOT NULL, payload TEXT NOT NULL,"
               " state TEXT NOT NULL DEFAULT 'pending', attempts INTEGER NOT NULL DEFAULT 0,"
               " next_try_at TEXT, delivered_at TEXT, answer TEXT,"
               " UNIQUE (run_id, event, channel))")
    db.execute("CREATE INDEX notifications_due ON notifications (next_try_at)"
               " WHERE state = 'pending'")
    db.execute("CREATE TABLE incidents (workflow TEXT PRIMARY KEY, first_run INTEGER NOT NULL,"
               " attempts INTEGER NOT NULL, since TEXT NOT NULL, told INTEGER NOT NULL)")


def _migration_10(db) -> None:
    """Re-runs point at the run they repeat; a run's retry is found by the run it retries."""
    db.execute("ALTER TABLE runs ADD COLUMN rerun_of INTEGER")
    # Partial: most runs are no retry, and enqueueing them touches no index for it.
    db.execute("CREATE INDEX runs_retry_of ON runs (retry_of) WHERE retry_of IS NOT NULL")



def _migration_11(db) -> None:
    """Rolled-up history: what pruned runs leave for the reports (`rollups.py`)."""
    rollups.create_table(db)


def _migration_12(db) -> None:
    """Indexes whose head answers each of the daemon's wake-ups, however many runs wait and
    however many schedules there are.

    The ready queue splits by whether a run waits for a time: a run that does not is ready,
    and the head of `runs_ready` is the best of them; one that does is ready once its time
    has come, which `runs_waiting` (by that time) tells at its head, and `runs_deferred` (in
    the queue's order) holds for the claim. A run is in one of the two claim-order indexes, as
    it was in the one they replace; only a run that waits enters `runs_waiting` too."""
    db.execute("DROP INDEX runs_ready")
    db.execute(f"CREATE INDEX runs_ready ON runs ({CLAIM_ORDER_SQL}) WHERE {READY_NOW_SQL}")
    db.execute(f"CREATE INDEX runs_deferred ON runs ({CLAIM_ORDER_SQL}, not_before)"
               f" WHERE {DEFERRED_SQL}")
    db.execute(f"CREATE INDEX runs_waiting ON runs (mode, not_before) WHERE {DEFERRED_SQL}")
    db.execute("CREATE INDEX schedules_due ON schedules (next_fire_at)"
               " WHERE paused = 0 AND next_fire_at IS NOT NULL")
    # Read at every wake-up (schedules of disabled workflows do not fire) and every claim
    # (the workflows with a limit): a few rows each, not every workflow.
    db.execute("CREATE INDEX workflows_disabled ON workflows (name) WHERE disabled = 1")
    db.execute("CREATE INDEX workflows_limited ON workflows (name, max_concurrent)"
               " WHERE max_concurrent IS NOT NULL")


def _migration_13(db) -> None:
    """Why an eco run waits until its `not_before` (the window its planner chose); what the
    daemon plans eco runs by, for the clients that queue them."""
    db.execute("ALTER TABLE runs ADD COLUMN not_before_reason TEXT")
    db.execute("ALTER TABLE daemon_policy ADD COLUMN optimise TEXT")
    db.execute("ALTER TABLE daemon_policy ADD COLUMN max_delay_s REAL")
    db.execute("ALTER TABLE daemon_policy ADD COLUMN series_path TEXT")


def _migration_14(db) -> None:
    """Runs that missed their deadline, by mode and workflow, for `report latency`'s attainment:
    partial, so only such runs (few) pay an index entry when they finish."""
    db.execute("CREATE INDEX runs_deadline_missed ON runs (mode, workflow, finished_at)"
               " WHERE deadline_met = 0 AND duration_s IS NOT NULL")


def _migration_15(db) -> None:
    """What a run was charged as it ended under a tariff or a carbon forecast
    (`sqlite_charges.py`), and the same sums in the rollups of pruned runs."""
    for column, kind in (("tariff_cost", "REAL"), ("tariff_baseline_cost", "REAL"),
                         ("tariff_source", "TEXT"), ("carbon_g", "REAL"),
                         ("baseline_carbon_g", "REAL"), ("carbon_source", "TEXT")):
        db.execute(f"ALTER TABLE runs ADD COLUMN {column} {kind}")
    rollups.add_charge_columns(db)
    # `report costs` adds these to its sums: from an index of only the runs that have them
    # (none unless a tariff or forecast is configured), so runs without cost no index entry.
    db.execute(f"CREATE INDEX runs_charges ON runs (mode, off_peak, substr(finished_at, 1, 10),"
               f" finished_at, workflow, duration_s, cpu_user_s, cpu_system_s, tariff_cost,"
               f" tariff_baseline_cost, carbon_g, baseline_carbon_g) WHERE {CHARGED_SQL}")


# Runs charged under a tariff or carbon forecast (the partial index runs_charges holds them).
CHARGED_SQL = "duration_s IS NOT NULL AND (tariff_cost IS NOT NULL OR carbon_g IS NOT NULL)"


def _migration_16(db) -> None:
    """Whether the user who submitted a run waited for it (`run --now`) or not (`--no-wait`):
    what `report advise` counts to tell work nobody waits for."""
    db.execute("ALTER TABLE runs ADD COLUMN followed INTEGER")


def _migration_17(db) -> None:
    """Hourly summaries of finished runs beside the detail (`summaries.py`), which reports
    over long periods add up instead of the runs; and two report indexes fewer for each run
    that ends: one for `report pools` where there were two (busy and queued time, both picked
    by finish time now; it serves the earliest start too), and none that leads with the mode
    for `report costs` (the summaries add up the hours that are over; the few runs since are
    read by finish time)."""
    summaries.create_tables(db.conn)
    for index in ("runs_busy", "runs_queued_time", "runs_started", "runs_costs"):
        db.execute(f"DROP INDEX {index}")
    db.execute(f"CREATE INDEX runs_pools ON runs (mode, finished_at, started_at, enqueued_at,"
               f" {epoch_sql('started_at')}, {epoch_sql('finished_at')},"
               f" {epoch_sql('enqueued_at')}, {epoch_sql(LEFT_QUEUE_SQL)}, pool, workflow,"
               " duration_s) WHERE finished_at IS NOT NULL")


MIGRATIONS = [_migration_1, _migration_2, _migration_3, _migration_4, _migration_5,
              _migration_6, _migration_7, _migration_8, _migration_9,
              _migration_10, _migration_11, _migration_12, _migration_13,
              _migration_14, _migration_15, _migration_16, _migration_17]


class Store:
    """An open database. Use as a context manager, or call `close()`."""

    dialect = SQLITE
    # Runs execute on this machine: their logs are files, their processes signalled here.
    cluster: None = None

    def __init__(self, path: Path, *, watched: bool = False) -> None:
        """`watched`: the caller watches the database's files itself (the daemon does, at
        every wake-up), so its writes need not look whether their log is shared."""
        self.path = path
        self.write_depth = 0
        self.in_use: FilesInUse | None = None  # set once the connection has read (below)
        # Before SQLite would make a fresh -wal or -shm beside the ones others use.
        refuse_unshared_log(path)
        self.conn = open_database(path, BUSY_TIMEOUT_MS / 1000, len(MIGRATIONS))
        self.conn.row_factory = sqlite3.Row
        self.conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        self.conn.execute("PRAGMA foreign_keys = ON")
        if self.conn.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
            self.conn.execute("PRAGMA journal_mode = WAL")
        self.conn.execute("PRAGMA synchronous = NORMAL")
        self.conn.execute(f"PRAGMA wal_autocheckpoint = {WAL_AUTOCHECKPOINT_PAGES}")
        self.migrate()
        # The files this connection uses, looked at again (two or three lstat calls) before
        # each write: the full look at the others' locks was made as it opened.
        if not watched:
            self.in_use = FilesInUse(files_in_use(path))
        self.queue: RunQueue = SqliteRunQueue(self)
        self.outbox: Outbox = SqliteOutbox(self)

    @classmethod
    def open(cls, home: Path | None = None, *, watched: bool = False) -> Store:
        home = ensure_state_dir(home or state_dir())
        return cls(database_path(home), watched=watched)

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        self.conn.close()

    def read(self, sql: str, args: Args = ()) -> sqlite3.Cursor:
        """A cursor over a query's rows (`dialect.ReportStore`)."""
        return self.conn.execute(sql, args)

    def check_integrity(self) -> None:
        """Refuse a damaged database (every page read: the daemon does it once, at start)."""
        check_integrity(self.conn, self.path)

    def checkpoint(self) -> None:
        """Copy the write-ahead log back into the database, as far as no reader is in the way."""
        self.conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()

    def checkpoint_all(self) -> bool:
        """Copy the whole write-ahead log back into the database, waiting for readers (on the
        busy timeout); whether all of it was copied."""
        busy, frames, copied = self.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
        return not busy and frames == copied

    def save_copy(self, target: Path) -> None:
        """Everything this connection sees, written to a new database file at `target`."""
        os.close(os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600))
        copy = sqlite3.connect(target)
        try:
            self.conn.backup(copy)
        finally:
            copy.close()

    @property
    def db(self):
        """The sqlite-utils view of the same connection (imported only when needed)."""
        import sqlite_utils

        return sqlite_utils.Database(self.conn)

    @contextmanager
    def write(self) -> Iterator[sqlite3.Connection]:
        """A short write transaction, taken IMMEDIATE so writers queue on the busy timeout
        instead of failing when a read transaction would have to be upgraded.

        Nested, it joins the outer transaction: several changes then commit (or not) as one."""
        if self.write_depth:
            self.write_depth += 1
            try:
                yield self.conn
            finally:
                self.write_depth -= 1
            return
        self.conn.execute("BEGIN IMMEDIATE")
        self.write_depth = 1
        try:
            if self.in_use is not None:
                refuse_replaced(self.in_use)
            yield self.conn
            self.conn.execute("COMMIT")
        except BaseException:
            # Also when COMMIT itself failed (disk full, read-only): a transaction left open
            # would make every later BEGIN fail. SQLite may already have rolled it back.
            if self.conn.in_transaction:
                with suppress(sqlite3.Error):
                    self.conn.execute("ROLLBACK")
            raise
        finally:
            self.write_depth = 0

    def published_policy(self, config: Config | None = None) -> QueuePolicy | None:
        """The policy the daemon last published (`daemon_policy.py`)."""
        from easyflow_cli.storage.daemon_policy import published_policy

        return published_policy(self, config)

    # ------------------------------------------------------------------ migrations

    @property
    def schema_version(self) -> int:
        return self.conn.execute("PRAGMA user_version").fetchone()[0]

    def migrate(self) -> None:
        if self.schema_version >= len(MIGRATIONS):
            return
        with self.write():
            # Re-read inside the lock: another process may have migrated meanwhile.
            version = self.schema_version
            for number, migration in enumerate(MIGRATIONS[version:], start=version + 1):
                migration(self.db)
                self.conn.execute(f"PRAGMA user_version = {number}")

    # ------------------------------------------------------------------ workflows

    def save_workflows(self, specs: list[WorkflowSpec], now: datetime) -> None:
        """Insert or replace workflows and their file-declared schedules, all in one transaction."""
        stamp = to_iso(now)
        with self.write():
            for spec in specs:
                existing = self.conn.execute(
                    "SELECT added_at FROM workflows WHERE name = ?", (spec.name,)
                ).fetchone()
                self.db["workflows"].upsert({
                    "name": spec.name, "description": spec.description,
                    "execution_mode": spec.execution_mode.value if spec.execution_mode else None,
                    "cost_priority": spec.cost_priority.value,
                    "source_file": spec.source_file, "content_hash": spec.content_hash,
                    "spec_json": json.dumps(spec_to_dict(spec)),
                    "max_concurrent": spec.max_concurrent,
                    "added_at": existing["added_at"] if existing else stamp, "updated_at": stamp,
                }, pk="name")
                self._sync_file_schedules(spec, stamp)

    def _sync_file_schedules(self, spec: WorkflowSpec, stamp: str) -> None:
        rows = self.conn.execute(
            "SELECT * FROM schedules WHERE workflow = ? ORDER BY origin != 'file', id",
            (spec.name,)).fetchall()
        adopt, drop, add = file_schedule_changes(rows, spec.schedules)
        for schedule_id in adopt:
            self.conn.execute("UPDATE schedules SET origin = 'file' WHERE id = ?", (schedule_id,))
        for schedule_id in drop:
            self.conn.execute("DELETE FROM schedules WHERE id = ?", (schedule_id,))
        for schedule in add:
            self.insert_schedule(spec.name, schedule, origin="file", now_iso=stamp)

    def get_workflow(self, name: str) -> WorkflowSpec:
        row = self.conn.execute("SELECT * FROM workflows WHERE name = ?", (name,)).fetchone()
        if row is None:
            raise NotFound(f"unknown workflow {shown(name)} (see `easyflow workflow list`)")
        return _spec_of_row(row)

    def workflow_spec_dict(self, name: str) -> tuple[dict[str, Any], str | None]:
        """A workflow's spec in the canonical form `spec_to_dict` gives, and its source file.

        For handing runs to workers: the stored JSON is that form already, so it is parsed
        (once per distinct text, cached) but not validated again. Do not modify the dict.
        """
        row = self.conn.execute("SELECT spec_json, source_file FROM workflows WHERE name = ?",
                                (name,)).fetchone()
        if row is None:
            raise NotFound(f"unknown workflow {name!r} (see `easyflow workflow list`)")
        return _parsed_spec_json(row["spec_json"]), row["source_file"]

    def workflow_rows(self) -> list[dict[str, Any]]:
        """Every workflow's row, `disabled` a boolean."""
        return [{**dict(r), "disabled": bool(r["disabled"])}
                for r in self.conn.execute("SELECT * FROM workflows ORDER BY name")]

    def all_workflows(self) -> list[WorkflowSpec]:
        return [_spec_of_row(r) for r in self.conn.execute("SELECT * FROM workflows")]

    def keep_runs(self) -> dict[str, int]:
        """Per workflow that sets `keep_runs`, how many finished runs it keeps."""
        return dict(self.conn.execute(
            "SELECT name, json_extract(spec_json, '$.keep_runs') AS keep FROM workflows"
            " WHERE keep IS NOT NULL").fetchall())

    def set_workflow_disabled(self, name: str, disabled: bool) -> None:
        self.get_workflow(name)
        with self.write():
            self.conn.execute("UPDATE workflows SET disabled = ? WHERE name = ?",
                              (int(disabled), name))

    def workflow_disabled(self, name: str) -> bool:
        row = self.conn.execute("SELECT disabled FROM workflows WHERE name = ?",
                                (name,)).fetchone()
        return bool(row and row[0])

    def remove_workflow(self, name: str, now: datetime) -> int:
        """Remove a workflow and its schedules; its queued runs are cancelled. Returns how many."""
        self.get_workflow(name)
        with self.write():
            cancelled = self.queue.cancel(self.queue.queued_ids(name), now=now,
                                          error="workflow removed")
            self.conn.execute("DELETE FROM schedules WHERE workflow = ?", (name,))
            self.conn.execute("DELETE FROM workflows WHERE name = ?", (name,))
        return len(cancelled)

    # ------------------------------------------------------------------ schedules

    def insert_schedule(self, workflow: str, schedule: ScheduleSpec, *, origin: str,
                        now_iso: str) -> int:
        cursor = self.conn.execute(
            "INSERT INTO schedules (workflow, kind, expr, timezone, mode, deadline_after_s,"
            " jitter_s, origin, paused, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, 0, ?)",
            (workflow, schedule.kind, schedule.expr, schedule.timezone,
             schedule.mode.value if schedule.mode else None, schedule.deadline_after,
             schedule.jitter, origin, now_iso),
        )
        schedule_id = cursor.lastrowid
        assert schedule_id is not None  # every INSERT sets it
        return schedule_id

    def update_schedule(self, schedule_id: int, schedule: ScheduleSpec) -> None:
        """A schedule's definition replaced; its id, origin, pause and history kept."""
        with self.write():
            self.conn.execute(
                "UPDATE schedules SET kind = ?, expr = ?, timezone = ?, mode = ?,"
                " deadline_after_s = ?, jitter_s = ? WHERE id = ?",
                (schedule.kind, schedule.expr, schedule.timezone,
                 schedule.mode.value if schedule.mode else None, schedule.deadline_after,
                 schedule.jitter, schedule_id))

    def get_schedule(self, schedule_id: int) -> dict[str, Any]:
        row = None
        if fits_sqlite_integer(schedule_id):
            row = self.conn.execute("SELECT * FROM schedules WHERE id = ?",
                                    (schedule_id,)).fetchone()
        if row is None:
            raise NotFound(f"unknown schedule {schedule_id} (see `easyflow schedule list`)")
        return _schedule(row)

    def delete_schedule(self, schedule_id: int) -> None:
        self.get_schedule(schedule_id)
        with self.write():
            self.conn.execute("DELETE FROM schedules WHERE id = ?", (schedule_id,))

    def set_schedule_state(self, schedule_id: int, *, paused: bool,
                           next_fire_at: str | None) -> None:
        with self.write():
            self.conn.execute("UPDATE schedules SET paused = ?, next_fire_at = ? WHERE id = ?",
                              (int(paused), next_fire_at, schedule_id))

    def record_schedule_fire(self, schedule_id: int, *, fired_at: str | None,
                             next_fire_at: str | None) -> None:
        with self.write():
            self.conn.execute(
                "UPDATE schedules SET last_fire_at = coalesce(?, last_fire_at),"
                " next_fire_at = ? WHERE id = ?", (fired_at, next_fire_at, schedule_id))

    def reanchor_schedule(self, schedule_id: int, *, created_at: str,
                          next_fire_at: str) -> None:
        """Give a schedule a new anchor (`every` counts its intervals from `created_at`)."""
        with self.write():
            self.conn.execute("UPDATE schedules SET created_at = ?, next_fire_at = ?"
                              " WHERE id = ?", (created_at, next_fire_at, schedule_id))

    def pending_schedules(self, kind: str) -> list[dict[str, Any]]:
        """Active schedules of `kind` with a fire planned."""
        return [_schedule(row) for row in self.conn.execute(
            "SELECT * FROM schedules WHERE kind = ? AND paused = 0 AND next_fire_at IS NOT NULL",
            (kind,))]

    def unplanned_schedules(self) -> list[dict[str, Any]]:
        """Active schedules that have neither fired nor been given a first fire time."""
        return [dict(r) for r in self.conn.execute(
            "SELECT * FROM schedules WHERE paused = 0 AND next_fire_at IS NULL"
            " AND last_fire_at IS NULL")]

    def due_schedules(self, now_iso: str) -> list[dict[str, Any]]:
        """Active schedules whose fire time has come (a disabled workflow's never do)."""
        return [dict(r) for r in self.conn.execute(
            "SELECT * FROM schedules WHERE paused = 0 AND next_fire_at IS NOT NULL"
            f" AND next_fire_at <= ? AND {NOT_DISABLED} ORDER BY next_fire_at", (now_iso,))]

    def upcoming_schedules(self, limit: int) -> list[dict[str, Any]]:
        return [dict(r) for r in self.conn.execute(
            "SELECT id, workflow, next_fire_at, timezone FROM schedules WHERE paused = 0"
            f" AND next_fire_at IS NOT NULL AND {NOT_DISABLED} ORDER BY next_fire_at LIMIT ?",
            (limit,))]

    def schedule_specs(self, workflow: str) -> list[ScheduleSpec]:
        """Every schedule of the workflow, from its file or added since, as a file declares it."""
        return [schedule_spec_of_row(row) for row in self.schedule_rows(workflow)]

    def schedule_rows(self, workflow: str | None = None) -> list[dict[str, Any]]:
        sql, args = "SELECT * FROM schedules", tuple[str, ...]()
        if workflow:
            sql, args = sql + " WHERE workflow = ?", (workflow,)
        return [_schedule(r) for r in self.conn.execute(sql + " ORDER BY id", args)]


def file_schedule_changes(rows: Sequence[Mapping[str, Any]], declared: Sequence[ScheduleSpec]
                          ) -> tuple[list[int], list[int], list[ScheduleSpec]]:
    """What saving a workflow's file does to its stored schedules (`rows`, the file's first,
    then by id): keep those the file still declares (with their history), drop the rest. A
    schedule added with `schedule add` that the file now declares too (an exported file
    carries them) becomes the file's: one schedule, not two firing together.

    The ids to make the file's, the ids to delete, the schedules to insert."""
    kept: dict[tuple, Mapping[str, Any]] = {}
    for row in rows:
        kept.setdefault(_schedule_key_of_row(row), row)
    wanted = {_schedule_key(s): s for s in declared}
    adopt = [row["id"] for key, row in kept.items() if key in wanted and row["origin"] != "file"]
    drop = [row["id"] for key, row in kept.items()
            if key not in wanted and row["origin"] == "file"]
    return adopt, drop, [schedule for key, schedule in wanted.items() if key not in kept]


def _schedule(row: sqlite3.Row) -> dict[str, Any]:
    """A schedule as every command shows it: `paused` a boolean, as JSON says yes or no."""
    return {**dict(row), "paused": bool(row["paused"])}


def schedule_spec_of_row(row: Any) -> ScheduleSpec:
    """A stored schedule as a file declares it."""
    return ScheduleSpec(row["kind"], row["expr"], row["timezone"],
                        Mode(row["mode"]) if row["mode"] else None, row["deadline_after_s"],
                        row["jitter_s"])


def _schedule_key(schedule: ScheduleSpec) -> tuple:
    return (schedule.kind, schedule.expr, schedule.timezone,
            schedule.mode.value if schedule.mode else None, schedule.deadline_after,
            schedule.jitter)


def _schedule_key_of_row(row) -> tuple:
    return (row["kind"], row["expr"], row["timezone"], row["mode"], row["deadline_after_s"],
            row["jitter_s"])


@functools.lru_cache(maxsize=256)
def _parsed_spec_json(text: str) -> dict[str, Any]:
    return json.loads(text)


def _spec_of_row(row) -> WorkflowSpec:
    return spec_from_dict(json.loads(row["spec_json"]), source_file=row["source_file"],
                          content_hash=row["content_hash"])


def checkpoint_aside(path: Path) -> None:
    """`Store.checkpoint` on a connection of its own, for a thread other than the store's: the
    copy and its fsync then hold up no one (a passive checkpoint takes no lock writers wait
    for), and the store's own commits seldom reach the automatic one."""
    conn = sqlite3.connect(path, timeout=BUSY_TIMEOUT_MS / 1000)
    try:
        conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
    finally:
        conn.close()
