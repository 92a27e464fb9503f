"""Queries written for SQLite, read on PostgreSQL: parameters translated, literals and casts left
alone, rows in sqlite3's shape."""

from datetime import UTC, datetime

import pytest

pytest.importorskip("psycopg", reason="the [cluster] extra is not installed")
from easyflow_cli.storage.pg_reads import pg_sql  # noqa: E402
from easyflow_cli.storage.pg_store import PgStore  # noqa: E402


def test_parameters_become_psycopgs_and_literals_stay():
    assert pg_sql("SELECT a FROM t WHERE b = ? AND c < :high AND d::time < '05:00:00'"
                  " AND e LIKE 'x%' AND f % 2 = 0") == (
        "SELECT a FROM t WHERE b = %s AND c < %(high)s AND d::time < '05:00:00'"
        " AND e LIKE 'x%%' AND f %% 2 = 0")
    assert pg_sql("SELECT 'it''s ?', ?") == "SELECT 'it''s ?', %s"


def test_rows_read_as_sqlite_gives_them(database_url):
    moment = datetime(2026, 11, 1, 5, 30, 0, 250000, tzinfo=UTC)
    with PgStore(database_url) as pg:
        row = pg.read("SELECT :at::timestamptz AS at, 1 = 1 AS flag, sum(2::bigint) AS n,"
                      " total(x) AS nothing FROM (VALUES (NULL::float8)) v(x)",
                      {"at": moment}).fetchone()
    assert tuple(row) == ("2026-11-01T05:30:00.250000Z", 1, 2.0, 0.0)
    assert (row["at"], row["flag"], dict(row)["nothing"]) == (row[0], 1, 0.0)
    at, flag, count, nothing = row
    assert isinstance(flag, int) and isinstance(count, float) and isinstance(nothing, float)
