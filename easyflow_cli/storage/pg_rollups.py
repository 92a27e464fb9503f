"""Rolled-up history in PostgreSQL: `rollups.py`'s rows, added to in `prune`'s transaction.

The rollup arithmetic is `rollups.py`'s; this module only reads the runs in the shape it
takes (times as ISO text, as SQLite stores them) and upserts the merged rows.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, tzinfo
from typing import Any

import psycopg
from psycopg.rows import dict_row

from easyflow_cli.core.timeutil import to_iso
from easyflow_cli.storage.rollups import COLUMNS, KEY_COLUMNS, RUN_COLUMNS, merged_row, rollups_of

FINISHED = "state NOT IN ('queued', 'running')"
UPSERT = (f"INSERT INTO run_rollups ({', '.join(COLUMNS)})"
          f" VALUES ({', '.join('%s' for _ in COLUMNS)})"
          f" ON CONFLICT ({', '.join(KEY_COLUMNS)}) DO UPDATE SET "
          + ", ".join(f"{c} = excluded.{c}" for c in COLUMNS if c not in KEY_COLUMNS))


def finished_rows(conn: psycopg.Connection, run_ids: Sequence[int]) -> list[dict[str, Any]]:
    """The finished runs among these, locked, with what their rollups need."""
    with conn.cursor(row_factory=dict_row) as cursor:
        rows = cursor.execute(
            f"SELECT id, log_path, {', '.join(RUN_COLUMNS)} FROM runs"
            f" WHERE id = ANY(%s) AND {FINISHED} ORDER BY id FOR UPDATE",
            (list(run_ids),)).fetchall()
    return [_as_text(row) for row in rows]


def add_rollups(conn: psycopg.Connection, runs: list[dict[str, Any]], zone: tzinfo) -> None:
    """Add the runs to their rollup rows (inside the caller's transaction)."""
    where = " AND ".join(f"{c} = %s" for c in KEY_COLUMNS)
    for rollup in rollups_of(runs, zone):
        with conn.cursor(row_factory=dict_row) as cursor:
            stored = cursor.execute(
                f"SELECT {', '.join(COLUMNS)} FROM run_rollups WHERE {where} FOR UPDATE",
                rollup.key).fetchone()
        conn.execute(UPSERT, merged_row(rollup, stored))


def _as_text(row: dict[str, Any]) -> dict[str, Any]:
    return {key: to_iso(value) if isinstance(value, datetime) else value
            for key, value in row.items()}
