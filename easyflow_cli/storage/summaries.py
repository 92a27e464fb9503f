"""Summaries of finished runs per UTC hour, kept beside the detail so that reports over long
periods add up hours instead of runs.

Per hour of `finished_at` × workflow × mode × tariff × whether a pool ran it, a row of
`run_summaries` holds what the reports and the metrics add up, in the form they add it: the
sums `report costs` prices and the charges it adds (`COST_SUMS`, `CHARGE_SUMS`), ended runs by
state, deadlines, the metrics' histogram buckets, and the busy and queued seconds `report
pools` charts with the span of times they come from; `run_summary_values` holds each hour's
queue waits and durations per mode as sketch buckets (`core/sketch.py`), which tell a report in
which narrow range of values a percentile lies (the value itself is then read from the detail,
so it is exact).

Hours are summarized only once they are over (the daemon does it in its quiet moments,
`runtime/daemon/summarizing.py`): every hour before `run_summary_mark.until` is summarized,
but for the hours in `run_summary_dirty`. A run that finishes, or is written or deleted, in a
summarized hour (a finish recorded late, an import, pruning) makes its hour dirty until it is
summarized again: the queue's transitions that set a finish time ask `mark_late_finishes`,
inserts `mark_inserted`, and a trigger sees deletes. So the summaries never disagree with the
detail the queue writes, and a report reads the detail for a dirty hour.

Summaries are derived: dropped and built again they lose nothing. When the sums they hold are
not those this code adds up (a field added to `COST_SUMS`), the tables are made again and the
daemon fills them anew; meanwhile reports read the detail.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from easyflow_cli.core.model import PoolName, RunState
from easyflow_cli.core.sketch import bucket_of
from easyflow_cli.storage.dialect import SQLITE

HOUR_SQL = "substr(finished_at, 1, 13)"  # YYYY-MM-DDTHH of the stored UTC time
HOUR_FORMAT = "%Y-%m-%dT%H"
SETTLED = "duration_s IS NOT NULL"  # runs that occupied a worker: what costs and latency count

# Each sum of a cost row as an aggregate of a value over settled runs, counting only the runs
# `condition` keeps. One entry here is one column of the cost reports, of the metrics' sums
# and of the summaries (their table follows this list).
COST_SUMS = {
    "runs": ("count", "1", None),
    "worker_s": ("total", "duration_s", None),
    "cpu_s": ("total", "cpu_user_s + cpu_system_s", None),
    "energy_j": ("total", "energy_j", None),
    "measured": ("count", "energy_j", None),
    "unmeasured_cpu_s": ("total", "cpu_user_s + cpu_system_s", "energy_j IS NULL"),
}

# What runs were charged under a tariff or carbon forecast (`core/receipts.py`): the worker and
# CPU time of the runs a tariff priced (which the pools' prices then leave out), and the
# charges. In detail a query of its own sums them, over the runs that have charges
# (`accounting.py`); the summaries hold them beside the other sums.
CHARGE_SUMS = {
    "tariff_worker_s": ("total", "duration_s", "tariff_cost IS NOT NULL"),
    "tariff_cpu_s": ("total", "cpu_user_s + cpu_system_s", "tariff_cost IS NOT NULL"),
    "tariff_cost": ("total", "tariff_cost", None),
    "tariff_baseline_cost": ("total", "tariff_baseline_cost", None),
    "carbon_g": ("total", "carbon_g", None),
    "baseline_carbon_g": ("total", "baseline_carbon_g", None),
}

# What `report advise` weighs, over settled runs, beyond the cost sums: who waited for them,
# what pinned their mode, their deadlines, how many had a start or deadline to judge, and when
# the first and last finished. Their misses depend on the configured objectives: read apart.
ADVICE_SUMS = {
    "waited_for": ("total", "followed = 1 OR (followed IS NULL AND trigger = 'manual')", None),
    "pinned_by_schedule": (
        "total", "mode_reason = 'explicit' AND trigger IN ('schedule', 'catch-up')", None),
    "pinned_by_hand": ("total", "mode_reason = 'explicit' AND trigger = 'manual'", None),
    "any_cpu_s": ("total", "coalesce(cpu_user_s, 0) + coalesce(cpu_system_s, 0)", None),
    "with_deadline": ("count", "deadline", None),
    "min_slack_s": ("min", "(julianday(deadline) - julianday(enqueued_at)) * 86400.0", None),
    "judged": ("count", "CASE WHEN mode = 'eco' THEN coalesce(deadline_met, queue_wait_s)"
                        " ELSE queue_wait_s END", None),
    "first_settled_at": ("min", "finished_at", None),
    "last_settled_at": ("max", "finished_at", None),
}

# The metrics' histogram bounds (seconds). Durations: a no-op call to a long batch job. Queue
# waits: the few milliseconds of a real-time hand-over to the hours an eco run waits for
# off-peak.
DURATION_BUCKETS = (0.01, 0.1, 0.5, 1.0, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 1800.0, 3600.0,
                    4 * 3600.0)
WAIT_BUCKETS = (0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 30.0, 60.0, 300.0, 1800.0, 3600.0,
                4 * 3600.0, 12 * 3600.0, 24 * 3600.0)
HISTOGRAMS = {"duration": ("duration_s", DURATION_BUCKETS),
              "wait": ("queue_wait_s", WAIT_BUCKETS)}

ENDED_STATES = (RunState.SUCCEEDED, RunState.FAILED, RunState.TIMED_OUT, RunState.CANCELLED)
KEY_COLUMNS = ("hour", "workflow", "mode", "off_peak", "foreground")

FOREGROUND = f"pool IS '{PoolName.FOREGROUND.value}'"


def epoch_sql(column: str) -> str:
    """Epoch seconds of a stored time, as `report pools` computes them (SQLite's spelling:
    the pools index holds these values)."""
    return SQLITE.epoch(column)


BEGAN, ENDED = epoch_sql("started_at"), epoch_sql("finished_at")
LEFT_QUEUE_SQL = "coalesce(claimed_at, started_at, finished_at)"
QUEUED, LEFT_QUEUE = epoch_sql("enqueued_at"), epoch_sql(LEFT_QUEUE_SQL)


def histogram_columns(name: str) -> list[str]:
    """A histogram's count columns: one per bound, and one above the last."""
    return [f"{name}_le_{index}" for index in range(len(HISTOGRAMS[name][1]) + 1)]


def _aggregates() -> dict[str, str]:
    """Every summary column but the key, as the aggregate over an hour's finished runs."""
    columns = {}
    for field, (aggregate, value, condition) in {**COST_SUMS, **CHARGE_SUMS,
                                                 **ADVICE_SUMS}.items():
        keep = f"{SETTLED} AND {condition}" if condition else SETTLED
        columns[field] = f"{aggregate}(CASE WHEN {keep} THEN {value} END)"
    for state in ENDED_STATES:
        columns[f"state_{state.value}"] = f"count(CASE WHEN state = '{state.value}' THEN 1 END)"
    columns["deadlines_met"] = f"count(CASE WHEN {SETTLED} AND deadline_met THEN 1 END)"
    columns["deadlines_missed"] = f"count(CASE WHEN {SETTLED} AND NOT deadline_met THEN 1 END)"
    columns["waited"] = f"count(CASE WHEN {SETTLED} THEN queue_wait_s END)"
    columns["wait_s"] = f"total(CASE WHEN {SETTLED} THEN queue_wait_s END)"
    for name, (value, bounds) in HISTOGRAMS.items():
        edges = ["-1e308", *map(repr, bounds), "1e308"]
        for column, low, high in zip(histogram_columns(name), edges[:-1], edges[1:], strict=True):
            columns[column] = (f"count(CASE WHEN {SETTLED} AND {value} > {low}"
                               f" AND {value} <= {high} THEN 1 END)")
    columns.update(_pool_aggregates())
    return columns


def _pool_aggregates() -> dict[str, str]:
    """What `report pools` adds up, and the span it comes from: an hour's rows whose busy and
    queued times lie inside one slice of a report's timeline are added to it whole."""
    started = "started_at IS NOT NULL"
    return {
        "busy_runs": f"count(CASE WHEN {started} THEN 1 END)",
        "busy_s": f"total(CASE WHEN {started} AND NOT {FOREGROUND} AND {ENDED} > {BEGAN}"
                  f" THEN {ENDED} - {BEGAN} END)",
        "queued_s": f"total(CASE WHEN {LEFT_QUEUE} > {QUEUED} THEN {LEFT_QUEUE} - {QUEUED} END)",
        "first_began": f"min(CASE WHEN {started} THEN {BEGAN} END)",
        "first_settled_began": f"min(CASE WHEN {started} AND {SETTLED} THEN {BEGAN} END)",
        "last_ended": f"max({ENDED})",
        "first_queued": f"min({QUEUED})",
        "last_left": f"max({LEFT_QUEUE})",
    }


AGGREGATES = _aggregates()
COLUMNS = (*KEY_COLUMNS, *AGGREGATES)
VALUE_COLUMNS = ("duration_s", "queue_wait_s")


def create_tables(conn: Any) -> None:
    """The summary tables, empty, and the triggers that mark an hour dirty."""
    values = ", ".join(f"{name} {_type(name, sql)}" for name, sql in AGGREGATES.items())
    conn.execute(f"CREATE TABLE run_summaries (hour TEXT NOT NULL, workflow TEXT NOT NULL,"
                 f" mode TEXT NOT NULL, off_peak INTEGER, foreground INTEGER NOT NULL, {values})")
    conn.execute("CREATE INDEX run_summaries_hour ON run_summaries (hour)")
    conn.execute("CREATE TABLE run_summary_values (hour TEXT NOT NULL, mode TEXT NOT NULL,"
                 " value TEXT NOT NULL, bucket INTEGER NOT NULL, count INTEGER NOT NULL,"
                 " PRIMARY KEY (mode, value, hour, bucket)) WITHOUT ROWID")
    conn.execute("CREATE TABLE run_summary_mark (id INTEGER PRIMARY KEY CHECK (id = 1),"
                 " until TEXT NOT NULL)")
    conn.execute("CREATE TABLE run_summary_dirty (hour TEXT PRIMARY KEY) WITHOUT ROWID")
    _create_triggers(conn)


def _create_triggers(conn: Any) -> None:
    """A finished run deleted from a summarized hour (pruning) marks its hour dirty. Inserts
    and finishes are looked at by `mark_inserted` and `mark_late_finishes`, once per
    transaction: a trigger on them would cost every run queued, started or finished."""
    conn.execute("CREATE TRIGGER runs_summarized_delete AFTER DELETE ON runs"
                 " WHEN OLD.finished_at < (SELECT until FROM run_summary_mark) BEGIN"
                 " INSERT OR IGNORE INTO run_summary_dirty SELECT substr(OLD.finished_at, 1, 13);"
                 " END")


def mark_inserted(conn: Any, ids: range) -> None:
    """Runs just inserted with these ids (an import, a seeded history) make their hours dirty
    where they finished in a summarized hour."""
    if conn.execute("SELECT 1 FROM sqlite_master WHERE name = 'run_summary_dirty'"
                    ).fetchone() is None:
        return  # a schema from before the summaries (its migrations not run yet)
    conn.execute("INSERT OR IGNORE INTO run_summary_dirty SELECT DISTINCT"
                 " substr(finished_at, 1, 13) FROM runs WHERE id BETWEEN ? AND ?"
                 " AND finished_at < (SELECT until FROM run_summary_mark)",
                 (ids.start, ids.stop - 1))


def mark_late_finishes(conn: Any, finished: Sequence[datetime]) -> None:
    """Runs that just finished at these times (in the caller's transaction) make their hours
    dirty where those are summarized already: a finish recorded after its hour was over."""
    earliest = min(finished, default=None)
    until = conn.execute("SELECT until FROM run_summary_mark").fetchone()
    if earliest is None or until is None or hour_of(earliest) >= until[0]:
        return  # the usual case: a run finishes in the hour under way
    late = {hour_of(moment) for moment in finished}
    conn.executemany("INSERT OR IGNORE INTO run_summary_dirty SELECT ?1 WHERE ?1 < ?2",
                     [(hour, until[0]) for hour in late])


def _type(name: str, aggregate: str) -> str:
    if name.endswith("_at"):
        return "TEXT"  # a stored time
    return "INTEGER" if aggregate.startswith("count(") else "REAL"


def drop_tables(conn: Any) -> None:
    conn.execute("DROP TRIGGER IF EXISTS runs_summarized_delete")
    for table in ("run_summaries", "run_summary_values", "run_summary_mark",
                  "run_summary_dirty"):
        conn.execute(f"DROP TABLE IF EXISTS {table}")


def current(conn: sqlite3.Connection) -> bool:
    """Do the stored summaries hold the columns this code adds up?"""
    stored = [row[1] for row in conn.execute("PRAGMA table_info(run_summaries)")]
    return stored == list(COLUMNS)


def make_current(conn: sqlite3.Connection) -> None:
    """The summary tables made again, empty, when they hold other columns (in a transaction)."""
    if not current(conn):
        drop_tables(conn)
        create_tables(conn)


# ------------------------------------------------------------------ what is covered


def hour_of(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime(HOUR_FORMAT)


def hour_start(hour: str) -> datetime:
    return datetime.strptime(hour, HOUR_FORMAT).replace(tzinfo=UTC)


def next_hour(hour: str) -> str:
    return hour_of(hour_start(hour) + timedelta(hours=1))


def mark(conn: sqlite3.Connection) -> str | None:
    """Every hour before this one is summarized (but for the dirty ones); None: none is."""
    row = conn.execute("SELECT until FROM run_summary_mark").fetchone()
    return row[0] if row else None


def dirty_hours(conn: sqlite3.Connection) -> set[str]:
    return {hour for hour, in conn.execute("SELECT hour FROM run_summary_dirty")}


# ------------------------------------------------------------------ summarizing


def summarize(conn: sqlite3.Connection, before: datetime, runs: int) -> int:
    """Summarize about `runs` finished runs of the hours over before `before` (inside the
    caller's transaction): dirty hours first, then the next hours after the mark. Returns how
    many runs were read; 0 when every hour before `before` is summarized."""
    dirty = conn.execute("SELECT hour FROM run_summary_dirty ORDER BY hour LIMIT 1").fetchone()
    if dirty is not None:
        return _summarize_dirty(conn, dirty[0])
    limit = hour_of(before)
    low = mark(conn) or _first_hour(conn)
    if low is None or low >= limit:
        return 0
    high = _hours_end(conn, low, limit, runs)
    read = _add_hours(conn, low, high)
    conn.execute("INSERT OR REPLACE INTO run_summary_mark VALUES (1, ?)", (high,))
    return max(read, 1)


def _first_hour(conn: sqlite3.Connection) -> str | None:
    first = conn.execute("SELECT min(finished_at) FROM runs WHERE finished_at IS NOT NULL"
                         ).fetchone()[0]
    return None if first is None else first[:13]


def _hours_end(conn: sqlite3.Connection, low: str, limit: str, runs: int) -> str:
    """The hour after those from `low` that hold about `runs` runs (at least one hour; never
    past `limit`)."""
    row = conn.execute("SELECT finished_at FROM runs WHERE finished_at >= ?"
                       " ORDER BY finished_at LIMIT 1 OFFSET ?", (low, runs)).fetchone()
    if row is None:
        return limit
    return min(limit, max(row[0][:13], next_hour(low)))


def _summarize_dirty(conn: sqlite3.Connection, hour: str) -> int:
    conn.execute("DELETE FROM run_summaries WHERE hour = ?", (hour,))
    conn.execute("DELETE FROM run_summary_values WHERE hour = ?", (hour,))
    read = _add_hours(conn, hour, next_hour(hour))
    conn.execute("DELETE FROM run_summary_dirty WHERE hour = ?", (hour,))
    return max(read, 1)


def _add_hours(conn: sqlite3.Connection, low: str, high: str) -> int:
    """The summaries of the runs that finished in the hours [low, high)."""
    where = "finished_at >= ? AND finished_at < ?"
    before = conn.total_changes
    conn.execute(
        f"INSERT INTO run_summaries ({', '.join(COLUMNS)}) SELECT {HOUR_SQL}, workflow, mode,"
        f" off_peak, {FOREGROUND}, {', '.join(AGGREGATES.values())} FROM runs"
        f" INDEXED BY runs_finished WHERE {where}"
        f" GROUP BY {HOUR_SQL}, workflow, mode, off_peak, {FOREGROUND}", (low, high))
    conn.create_function("sketch_bucket", 1, bucket_of, deterministic=True)
    for value in VALUE_COLUMNS:
        conn.execute(
            f"INSERT INTO run_summary_values SELECT {HOUR_SQL}, mode, '{value}',"
            f" sketch_bucket({value}), count(*) FROM runs INDEXED BY runs_finished"
            f" WHERE {where} AND {SETTLED} AND {value} IS NOT NULL GROUP BY 1, 2, 4",
            (low, high))
    if conn.total_changes == before:
        return 0
    ended = " + ".join(f"state_{state.value}" for state in ENDED_STATES)
    return int(conn.execute(f"SELECT total({ended}) FROM run_summaries"
                            " WHERE hour >= ? AND hour < ?", (low, high)).fetchone()[0])


def summarize_all(conn: sqlite3.Connection, before: datetime, runs: int = 500_000) -> None:
    """Every hour over before `before` summarized (the bench, after seeding a history)."""
    while summarize(conn, before, runs):
        pass
