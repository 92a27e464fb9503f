"""The PostgreSQL store (the `[cluster]` backend): its connection, migrations, workflows and
schedules. The run queue is `pg_queue.py` (`store.queue`), the outbox `pg_outbox.py`.

Imported only when a `[cluster]` database is configured: psycopg is an optional extra. The
connection is in autocommit mode, so a read holds no transaction open; `write()` makes one.
Rows come back in the same shapes as the SQLite store's: times of schedules and workflows as
the ISO text `to_iso` writes, flags as booleans. Every change of workflows or schedules is
announced at its commit on CHANGES_CHANNEL, for a running coordinator to take up at once.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import TYPE_CHECKING, Any

import psycopg
from psycopg.conninfo import conninfo_to_dict
from psycopg.rows import dict_row

from easyflow_cli.core.cluster_config import masked
from easyflow_cli.core.config import Config
from easyflow_cli.core.errors import EasyflowError, NotFound, printable, shown
from easyflow_cli.core.planning import QueuePolicy
from easyflow_cli.core.spec import ScheduleSpec, WorkflowSpec, spec_from_dict, spec_to_dict
from easyflow_cli.core.timeutil import to_iso
from easyflow_cli.storage.daemon_policy import POLICY_COLUMNS, policy_of_row, policy_values
from easyflow_cli.storage.dialect import POSTGRES, Args
from easyflow_cli.storage.outbox import Outbox
from easyflow_cli.storage.pg_outbox import PgOutbox
from easyflow_cli.storage.pg_queue import PgRunQueue, fits_bigint
from easyflow_cli.storage.pg_reads import pg_sql, sqlite_shaped
from easyflow_cli.storage.pg_schema import MIGRATIONS
from easyflow_cli.storage.run_queue import RunQueue
from easyflow_cli.storage.store import file_schedule_changes, schedule_spec_of_row

if TYPE_CHECKING:
    from easyflow_cli.storage.pg_cluster import PgCluster

NOT_DISABLED = "workflow NOT IN (SELECT name FROM workflows WHERE disabled)"
# Advisory locks are per database: their keys name the schema, so that two installations in
# two schemas of one database never wait for each other.
LOCK_KEY = "hashtext(current_schema() || %s)"
MIGRATE_LOCK = "migrate"
# Channel a change of workflows or schedules is announced on at commit (no payload): the
# coordinator listens (`pg_wakeups.Changes`), as the local daemon hears `reload` on its socket.
CHANGES_CHANNEL = "easyflow_changes"
CONNECT_TIMEOUT_S = 10


class PgStore:
    """An open PostgreSQL database. Use as a context manager, or call `close()`."""

    dialect = POSTGRES

    def __init__(self, url: str) -> None:
        self.url = url
        self.write_depth = 0
        self.conn = connect(url)
        # Times come back in UTC, as SQLite's text says them.
        self.conn.execute("SET TIME ZONE 'UTC'")
        self.migrate()
        self.queue: RunQueue = PgRunQueue(self)
        self.outbox: Outbox = PgOutbox(self)
        self._cluster: PgCluster | None = None

    @property
    def cluster(self) -> PgCluster:
        """Runs execute on workers elsewhere: their logs, cancels, who coordinates."""
        if self._cluster is None:
            from easyflow_cli.storage.pg_cluster import PgCluster

            self._cluster = PgCluster(self)
        return self._cluster

    def __enter__(self) -> PgStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.conn.close()

    @contextmanager
    def write(self) -> Iterator[psycopg.Connection]:
        """A transaction. Nested, it joins the outer one: several changes then commit (or not)
        as one."""
        if self.write_depth:
            self.write_depth += 1
            try:
                yield self.conn
            finally:
                self.write_depth -= 1
            return
        with self.conn.transaction():
            self.write_depth = 1
            try:
                yield self.conn
            finally:
                self.write_depth = 0

    def read(self, sql: str, args: Args = ()) -> psycopg.Cursor[Any]:
        """A cursor over the rows of a query written for SQLite (`dialect.ReportStore`), in
        the shape sqlite3 gives them (`pg_reads.py`)."""
        cursor = self.conn.cursor(row_factory=sqlite_shaped)
        return cursor.execute(pg_sql(sql), args)

    def lock(self, name: str) -> None:
        """Hold a lock of this name (in this schema) until the transaction ends."""
        self.conn.execute(f"SELECT pg_advisory_xact_lock({LOCK_KEY})", (f".{name}",))

    def _announce_change(self) -> None:
        """Tell the coordinator, when this transaction commits, that workflows or schedules
        changed (several announcements in one transaction arrive as one)."""
        self.conn.execute("SELECT pg_notify(%s, '')", (CHANGES_CHANNEL,))

    # ------------------------------------------------------------------ migrations

    @property
    def schema_version(self) -> int:
        row = self.conn.execute("SELECT to_regclass('easyflow_schema')").fetchone()
        if row is None or row[0] is None:
            return 0
        version = self.conn.execute("SELECT version FROM easyflow_schema").fetchone()
        return 0 if version is None else version[0]

    def migrate(self) -> None:
        if self.schema_version >= len(MIGRATIONS):
            return
        # A lock held across transactions, taken before the migration's begins: a transaction
        # begun before another process's migration committed would not see its new tables.
        key = (f".{MIGRATE_LOCK}",)
        self.conn.execute(f"SELECT pg_advisory_lock({LOCK_KEY})", key)
        try:
            with self.write() as conn:
                version = self.schema_version  # another process may have migrated meanwhile
                if version == 0:
                    conn.execute("CREATE TABLE easyflow_schema (version integer NOT NULL)")
                    conn.execute("INSERT INTO easyflow_schema VALUES (0)")
                for statements in MIGRATIONS[version:]:
                    for statement in statements:
                        conn.execute(statement)
                conn.execute("UPDATE easyflow_schema SET version = %s", (len(MIGRATIONS),))
        finally:
            self.conn.execute(f"SELECT pg_advisory_unlock({LOCK_KEY})", key)

    # ------------------------------------------------------------------ workflows

    def save_workflows(self, specs: list[WorkflowSpec], now: datetime) -> None:
        """Insert or replace workflows and their file-declared schedules, all in one transaction."""
        with self.write() as conn:
            for spec in specs:
                conn.execute(
                    "INSERT INTO workflows (name, description, execution_mode, cost_priority,"
                    " source_file, content_hash, spec_json, max_concurrent, added_at,"
                    " updated_at) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)"
                    " ON CONFLICT (name) DO UPDATE SET description = excluded.description,"
                    " execution_mode = excluded.execution_mode,"
                    " cost_priority = excluded.cost_priority, source_file = excluded.source_file,"
                    " content_hash = excluded.content_hash, spec_json = excluded.spec_json,"
                    " max_concurrent = excluded.max_concurrent, updated_at = excluded.updated_at",
                    (spec.name, spec.description,
                     spec.execution_mode.value if spec.execution_mode else None,
                     spec.cost_priority.value, spec.source_file, spec.content_hash,
                     json.dumps(spec_to_dict(spec)), spec.max_concurrent, now, now))
                self._sync_file_schedules(spec, now)
            self._announce_change()

    def _sync_file_schedules(self, spec: WorkflowSpec, now: datetime) -> None:
        rows = self._dicts("SELECT * FROM schedules WHERE workflow = %s"
                           " ORDER BY origin != 'file', id", (spec.name,))
        adopt, drop, add = file_schedule_changes(rows, spec.schedules)
        if adopt:
            self.conn.execute("UPDATE schedules SET origin = 'file' WHERE id = ANY(%s)", (adopt,))
        if drop:
            self.conn.execute("DELETE FROM schedules WHERE id = ANY(%s)", (drop,))
        for schedule in add:
            self.insert_schedule(spec.name, schedule, origin="file", now_iso=to_iso(now))

    def get_workflow(self, name: str) -> WorkflowSpec:
        rows = self._dicts("SELECT * FROM workflows WHERE name = %s", (name,))
        if not rows:
            raise NotFound(f"unknown workflow {shown(name)} (see `easyflow workflow list`)")
        return _spec_of_row(rows[0])

    def workflow_spec_dict(self, name: str) -> tuple[dict[str, Any], str | None]:
        """A workflow's spec in the canonical form `spec_to_dict` gives, and its source file."""
        row = self.conn.execute("SELECT spec_json, source_file FROM workflows WHERE name = %s",
                                (name,)).fetchone()
        if row is None:
            raise NotFound(f"unknown workflow {name!r} (see `easyflow workflow list`)")
        return json.loads(row[0]), row[1]

    def workflow_rows(self) -> list[dict[str, Any]]:
        """Every workflow's row, its times as ISO text."""
        return [_stamped(row) for row in self._dicts("SELECT * FROM workflows ORDER BY name")]

    def all_workflows(self) -> list[WorkflowSpec]:
        return [_spec_of_row(row) for row in self._dicts("SELECT * FROM workflows")]

    def keep_runs(self) -> dict[str, int]:
        """Per workflow that sets `keep_runs`, how many finished runs it keeps."""
        return dict(self.conn.execute(
            "SELECT name, keep FROM (SELECT name, (spec_json::jsonb ->> 'keep_runs')::bigint"
            " AS keep FROM workflows) AS kept WHERE keep IS NOT NULL").fetchall())

    def set_workflow_disabled(self, name: str, disabled: bool) -> None:
        self.get_workflow(name)
        with self.write() as conn:
            conn.execute("UPDATE workflows SET disabled = %s WHERE name = %s", (disabled, name))
            self._announce_change()

    def workflow_disabled(self, name: str) -> bool:
        row = self.conn.execute("SELECT disabled FROM workflows WHERE name = %s",
                                (name,)).fetchone()
        return bool(row and row[0])

    def remove_workflow(self, name: str, now: datetime) -> int:
        """Remove a workflow and its schedules; its queued runs are cancelled. Returns how many."""
        self.get_workflow(name)
        with self.write() as conn:
            cancelled = self.queue.cancel(self.queue.queued_ids(name), now=now,
                                          error="workflow removed")
            conn.execute("DELETE FROM schedules WHERE workflow = %s", (name,))
            conn.execute("DELETE FROM workflows WHERE name = %s", (name,))
            self._announce_change()
        return len(cancelled)

    # ------------------------------------------------------------------ the daemon's policy

    def publish_policy(self, policy: QueuePolicy, now: datetime) -> None:
        """As `daemon_policy.publish_policy`: the policy clients plan the runs they queue by."""
        updates = ", ".join(f"{c} = excluded.{c}" for c in ("published_at", *POLICY_COLUMNS))
        with self.write() as conn:
            conn.execute(
                f"INSERT INTO daemon_policy (id, published_at, {', '.join(POLICY_COLUMNS)})"
                f" VALUES (1, %s, %s, %s, %s, %s, %s) ON CONFLICT (id) DO UPDATE SET {updates}",
                (now, *policy_values(policy)))

    def published_policy(self, config: Config | None = None) -> QueuePolicy | None:
        """The last policy a daemon published, if one ever did (as `daemon_policy`'s)."""
        row = self.conn.execute(
            f"SELECT {', '.join(POLICY_COLUMNS)} FROM daemon_policy").fetchone()
        return None if row is None else policy_of_row(tuple(row), config)

    # ------------------------------------------------------------------ schedules

    def insert_schedule(self, workflow: str, schedule: ScheduleSpec, *, origin: str,
                        now_iso: str) -> int:
        row = self.conn.execute(
            "INSERT INTO schedules (workflow, kind, expr, timezone, mode, deadline_after_s,"
            " jitter_s, origin, paused, created_at)"
            " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, false, %s) RETURNING id",
            (workflow, schedule.kind, schedule.expr, schedule.timezone,
             schedule.mode.value if schedule.mode else None, schedule.deadline_after,
             schedule.jitter, origin, now_iso)).fetchone()
        self._announce_change()
        assert row is not None  # RETURNING gives the one row inserted
        return row[0]

    def update_schedule(self, schedule_id: int, schedule: ScheduleSpec) -> None:
        """A schedule's definition replaced; its id, origin, pause and history kept."""
        with self.write() as conn:
            conn.execute(
                "UPDATE schedules SET kind = %s, expr = %s, timezone = %s, mode = %s,"
                " deadline_after_s = %s, jitter_s = %s WHERE id = %s",
                (schedule.kind, schedule.expr, schedule.timezone,
                 schedule.mode.value if schedule.mode else None, schedule.deadline_after,
                 schedule.jitter, schedule_id))
            self._announce_change()

    def get_schedule(self, schedule_id: int) -> dict[str, Any]:
        rows = []
        if fits_bigint(schedule_id):
            rows = self._dicts("SELECT * FROM schedules WHERE id = %s", (schedule_id,))
        if not rows:
            raise NotFound(f"unknown schedule {schedule_id} (see `easyflow schedule list`)")
        return _stamped(rows[0])

    def delete_schedule(self, schedule_id: int) -> None:
        self.get_schedule(schedule_id)
        with self.write() as conn:
            conn.execute("DELETE FROM schedules WHERE id = %s", (schedule_id,))
            self._announce_change()

    def set_schedule_state(self, schedule_id: int, *, paused: bool,
                           next_fire_at: str | None) -> None:
        with self.write() as conn:
            conn.execute("UPDATE schedules SET paused = %s, next_fire_at = %s WHERE id = %s",
                         (paused, next_fire_at, schedule_id))
            self._announce_change()

    def record_schedule_fire(self, schedule_id: int, *, fired_at: str | None,
                             next_fire_at: str | None) -> None:
        with self.write() as conn:
            conn.execute(
                "UPDATE schedules SET last_fire_at = coalesce(%s::timestamptz, last_fire_at),"
                " next_fire_at = %s WHERE id = %s", (fired_at, next_fire_at, schedule_id))
            self._announce_change()

    def reanchor_schedule(self, schedule_id: int, *, created_at: str,
                          next_fire_at: str) -> None:
        """Give a schedule a new anchor (`every` counts its intervals from `created_at`)."""
        with self.write() as conn:
            conn.execute("UPDATE schedules SET created_at = %s, next_fire_at = %s WHERE id = %s",
                         (created_at, next_fire_at, schedule_id))

    def pending_schedules(self, kind: str) -> list[dict[str, Any]]:
        """Active schedules of `kind` with a fire planned."""
        return self._schedules("SELECT * FROM schedules WHERE kind = %s AND NOT paused"
                               " AND next_fire_at IS NOT NULL", (kind,))

    def unplanned_schedules(self) -> list[dict[str, Any]]:
        """Active schedules that have neither fired nor been given a first fire time."""
        return self._schedules("SELECT * FROM schedules WHERE NOT paused"
                               " AND next_fire_at IS NULL AND last_fire_at IS NULL")

    def due_schedules(self, now_iso: str) -> list[dict[str, Any]]:
        """Active schedules whose fire time has come (a disabled workflow's never do)."""
        return self._schedules(
            "SELECT * FROM schedules WHERE NOT paused AND next_fire_at IS NOT NULL"
            f" AND next_fire_at <= %s AND {NOT_DISABLED} ORDER BY next_fire_at", (now_iso,))

    def upcoming_schedules(self, limit: int) -> list[dict[str, Any]]:
        return self._schedules(
            "SELECT id, workflow, next_fire_at, timezone FROM schedules WHERE NOT paused"
            f" AND next_fire_at IS NOT NULL AND {NOT_DISABLED} ORDER BY next_fire_at LIMIT %s",
            (limit,))

    def schedule_specs(self, workflow: str) -> list[ScheduleSpec]:
        """Every schedule of the workflow, from its file or added since, as a file declares it."""
        return [schedule_spec_of_row(row) for row in self.schedule_rows(workflow)]

    def schedule_rows(self, workflow: str | None = None) -> list[dict[str, Any]]:
        if workflow:
            return self._schedules("SELECT * FROM schedules WHERE workflow = %s ORDER BY id",
                                   (workflow,))
        return self._schedules("SELECT * FROM schedules ORDER BY id")

    def _schedules(self, sql: str, args: tuple = ()) -> list[dict[str, Any]]:
        return [_stamped(row) for row in self._dicts(sql, args)]

    def _dicts(self, sql: str, args: tuple = ()) -> list[dict[str, Any]]:
        with self.conn.cursor(row_factory=dict_row) as cursor:
            return cursor.execute(sql, args).fetchall()


def connect(url: str) -> psycopg.Connection:
    """An autocommit connection named `easyflow` (as `pg_stat_activity` shows it) that gives
    up after CONNECT_TIMEOUT_S unless the URL says otherwise; an unreachable database is one
    line naming it (never its password)."""
    given = conninfo_to_dict(url)
    extra: dict[str, Any] = {"application_name": "easyflow"}
    if "connect_timeout" not in given:
        extra["connect_timeout"] = CONNECT_TIMEOUT_S
    try:
        return psycopg.connect(url, autocommit=True, **{
            key: value for key, value in extra.items() if key not in given})
    except psycopg.OperationalError as exc:
        reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        reason = reason.removeprefix("connection failed: ")
        raise EasyflowError(f"cannot reach the database {masked(url)}: {printable(reason)}"
                            ) from None


def _stamped(row: dict[str, Any]) -> dict[str, Any]:
    """A row with its times as the ISO text the SQLite store gives."""
    return {key: to_iso(value) if isinstance(value, datetime) else value
            for key, value in row.items()}


def _spec_of_row(row: dict[str, Any]) -> WorkflowSpec:
    return spec_from_dict(json.loads(row["spec_json"]), source_file=row["source_file"],
                          content_hash=row["content_hash"])
