"""The notification outbox in PostgreSQL: the `notifications` and `incidents` tables.

As in SQLite (`sqlite_outbox.py`, whose rules these are): a run's end events are written by
`record_end_events` inside the queue's `finish` transaction, which announces them at commit
(`EVENTS_CHANNEL`: runs end on workers, the coordinator delivers, `pg_deliveries.py`); the
delivery thread reads and marks rows through `PgOutbox`.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from contextlib import AbstractContextManager
from datetime import datetime
from typing import Any, Protocol

import psycopg

from easyflow_cli.core.model import Run
from easyflow_cli.core.notify import Channel, Event, NoticeBook, NoticeRule
from easyflow_cli.core.notify_events import (
    LEARNED_SAMPLE,
    Baseline,
    Incident,
    end_events,
    event_record,
    summary,
)
from easyflow_cli.core.timeutil import to_iso
from easyflow_cli.storage.outbox import Delivery, LateRun, late_runs
from easyflow_cli.storage.run_queue import RunQueue
from easyflow_cli.storage.sqlite_outbox import LIST_COLUMNS, host_name


class Reader(Protocol):
    """What event writing needs of the run queue it is called from."""

    @property
    def conn(self) -> psycopg.Connection: ...

    def get(self, run_id: int) -> Run: ...


# Announced (at commit) when a run's end wrote events: the coordinator's delivery listens.
EVENTS_CHANNEL = "easyflow_notifications"

# ------------------------------------------------------------------ written with a run's end


def record_end_events(queue: Reader, book: NoticeBook, run_ids: Sequence[int]) -> int:
    """The events of runs that just ended, with their workflows' incidents: inside the
    caller's transaction. How many events."""
    written = 0
    for run_id in run_ids:
        run = queue.get(run_id)
        rule = book.rule(run.workflow)
        if rule is not None:
            written += _record_end(queue.conn, run, rule)
    if written:
        queue.conn.execute("SELECT pg_notify(%s, '')", (EVENTS_CHANNEL,))
    return written


def _record_end(conn: psycopg.Connection, run: Run, rule: NoticeRule) -> int:
    before = _incident(conn, run.workflow)
    baseline = _baseline(conn, run) if rule.watches(Event.SLOW) else None
    decided = end_events(run, rule, before, baseline)
    if decided.incident != before:
        _save_incident(conn, run.workflow, decided.incident)
    for event in decided.events:
        text = summary(event, run, host=host_name(), incident=decided.told_incident,
                       baseline=baseline, slow_factor=rule.slow_factor)
        write_event(conn, rule, run, event, text, run.finished_at or run.enqueued_at,
                    decided.told_incident, baseline if event is Event.SLOW else None)
    return len(decided.events)


def write_event(conn: psycopg.Connection, rule: NoticeRule, run: Run, event: Event, text: str,
                at: datetime, incident: Incident | None = None,
                baseline: Baseline | None = None) -> bool:
    """One row per channel of the rule, due at once; False if this run had this event
    already."""
    event_id = uuid.uuid4().hex
    payload = json.dumps(event_record(run, event, event_id, host=host_name(), summary=text,
                                      incident=incident, baseline=baseline))
    written = 0
    for channel in rule.channels:
        written += conn.execute(
            "INSERT INTO notifications (event_id, event, workflow, run_id, channel,"
            " created_at, next_try_at, payload) VALUES (%s, %s, %s, %s, %s, %s, %s, %s)"
            " ON CONFLICT DO NOTHING",
            (event_id, event.value, run.workflow, run.id, channel.value, at, at, payload),
        ).rowcount
    return written > 0


def _incident(conn: psycopg.Connection, workflow: str) -> Incident | None:
    row = conn.execute("SELECT first_run, attempts, since, told FROM incidents"
                       " WHERE workflow = %s", (workflow,)).fetchone()
    return None if row is None else Incident(*row)


def _save_incident(conn: psycopg.Connection, workflow: str, incident: Incident | None) -> None:
    if incident is None:
        conn.execute("DELETE FROM incidents WHERE workflow = %s", (workflow,))
        return
    conn.execute("INSERT INTO incidents (workflow, first_run, attempts, since, told)"
                 " VALUES (%s, %s, %s, %s, %s) ON CONFLICT (workflow) DO UPDATE SET"
                 " first_run = excluded.first_run, attempts = excluded.attempts,"
                 " since = excluded.since, told = excluded.told",
                 (workflow, incident.first_run, incident.attempts, incident.since,
                  incident.told))


def _baseline(conn: psycopg.Connection, run: Run) -> Baseline | None:
    """Learned from the workflow's latest successful runs before this one."""
    rows = conn.execute(
        "SELECT duration_s FROM runs WHERE workflow = %s AND id < %s AND state = 'succeeded'"
        " AND duration_s IS NOT NULL ORDER BY id DESC LIMIT %s",
        (run.workflow, run.id, LEARNED_SAMPLE)).fetchall()
    return Baseline.of([row[0] for row in rows])


# ------------------------------------------------------------------ the outbox


class Database(Protocol):
    conn: psycopg.Connection
    queue: RunQueue

    def write(self) -> AbstractContextManager[psycopg.Connection]: ...


class PgOutbox:
    def __init__(self, store: Database) -> None:
        self.store = store

    def due(self, now: datetime, limit: int) -> list[Delivery]:
        rows = self.store.conn.execute(
            "SELECT id, event_id, event, workflow, run_id, channel, payload, attempts"
            " FROM notifications WHERE state = 'pending' AND next_try_at <= %s"
            " ORDER BY id LIMIT %s", (now, limit)).fetchall()
        return [Delivery(r[0], r[1], Event(r[2]), r[3], r[4], Channel(r[5]), json.loads(r[6]),
                         r[7]) for r in rows]

    def next_due_at(self) -> datetime | None:
        row = self.store.conn.execute(
            "SELECT min(next_try_at) FROM notifications WHERE state = 'pending'").fetchone()
        return None if row is None else row[0]

    def delivered(self, delivery_id: int, *, at: datetime, answer: str) -> None:
        with self.store.write() as conn:
            conn.execute("UPDATE notifications SET state = 'delivered', delivered_at = %s,"
                         " answer = %s, attempts = attempts + 1, next_try_at = NULL"
                         " WHERE id = %s AND state = 'pending'", (at, answer, delivery_id))

    def retry_later(self, delivery_id: int, *, answer: str, retry_at: datetime) -> None:
        with self.store.write() as conn:
            conn.execute("UPDATE notifications SET answer = %s, next_try_at = %s,"
                         " attempts = attempts + 1 WHERE id = %s AND state = 'pending'",
                         (answer, retry_at, delivery_id))

    def give_up(self, delivery_id: int, *, answer: str) -> None:
        with self.store.write() as conn:
            conn.execute("UPDATE notifications SET state = 'failed', answer = %s,"
                         " next_try_at = NULL, attempts = attempts + 1"
                         " WHERE id = %s AND state = 'pending'", (answer, delivery_id))

    def sweep_late(self, book: NoticeBook, now: datetime) -> tuple[int, datetime | None]:
        watching = book.watching(Event.LATE)
        if not watching:
            return 0, None
        runs = self.store.queue.awaited(watching)
        due, upcoming = late_runs(book, runs, self._late_told([run.id for run in runs]), now)
        return self._write_late(due, now), upcoming

    def _write_late(self, due: list[LateRun], now: datetime) -> int:
        if not due:
            return 0
        with self.store.write() as conn:
            return sum(write_event(conn, rule, run, Event.LATE,
                                   summary(Event.LATE, run, host=host_name(),
                                           late_after=late_after), now)
                       for run, rule, late_after in due)

    def _late_told(self, run_ids: list[int]) -> set[int]:
        return {row[0] for row in self.store.conn.execute(
            "SELECT run_id FROM notifications WHERE event = 'late' AND run_id = ANY(%s)",
            (run_ids,))}

    def pending_count(self) -> int:
        row = self.store.conn.execute(
            "SELECT count(*) FROM notifications WHERE state = 'pending'").fetchone()
        return 0 if row is None else row[0]

    def failed_by_channel(self) -> dict[str, int]:
        return dict(self.store.conn.execute(
            "SELECT channel, count(*) FROM notifications WHERE state = 'failed'"
            " GROUP BY channel").fetchall())

    def recent(self, limit: int) -> list[dict[str, Any]]:
        rows = self.store.conn.execute(
            f"SELECT {', '.join(LIST_COLUMNS)}, payload FROM notifications"
            " ORDER BY id DESC LIMIT %s", (limit,)).fetchall()
        return [_listed(row) for row in rows]


def _listed(row: Any) -> dict[str, Any]:
    record = {column: to_iso(value) if isinstance(value, datetime) else value
              for column, value in zip(LIST_COLUMNS, row, strict=False)}
    record["summary"] = json.loads(row[len(LIST_COLUMNS)]).get("summary")
    return record
