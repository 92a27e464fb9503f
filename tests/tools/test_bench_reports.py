"""The bench's seeded history is the database the same runs leave when written the normal
way (in transactions of a few runs, summarized a few hours at a time as the daemon does): the
same schema, rows and summaries, so the same reports."""

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from easyflow_cli.reporting import accounting
from easyflow_cli.reporting.accounting import Period
from easyflow_cli.reporting.reports import QUANTILES, cost_report, latency_report, pools_report
from easyflow_cli.reporting.timeline import Timeline
from easyflow_cli.storage import summaries
from easyflow_cli.storage.sqlite_queue import insert_runs
from easyflow_cli.storage.store import Store
from easyflow_cli.tools.bench_reports import SYNTHETIC_COLUMNS, seed_report_history
from tests.reporting.test_reports_sql import WORKERS
from tests.reporting.test_rolled_up import PRICES

RUNS = 3000
TABLES = ("runs", "run_summaries", "run_summary_values", "run_summary_mark",
          "run_summary_dirty")


def test_a_seeded_history_is_the_database_its_runs_leave_written_the_normal_way(tmp_path):
    seed_report_history(tmp_path / "seeded", RUNS)
    with Store.open(tmp_path / "seeded") as seeded, Store.open(tmp_path / "normal") as normal:
        write_the_normal_way(seeded, normal)
        assert seeded.conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert seeded.conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        assert schema(seeded) == schema(normal)
        assert summaries.mark(seeded.conn) is not None
        for table in TABLES:
            assert rows(seeded, table) == rows(normal, table), table
        now = datetime.now(UTC)
        assert reports(seeded, now) == reports(normal, now)


def test_seeded_runs_finish_in_the_order_of_their_ids_over_thirty_days(tmp_path):
    seed_report_history(tmp_path / "seeded", RUNS)
    with Store.open(tmp_path / "seeded") as store:
        finishes = [row[0] for row in store.conn.execute(
            "SELECT finished_at FROM runs ORDER BY id")]
    assert len(finishes) == RUNS and finishes == sorted(finishes)
    first, last = (datetime.fromisoformat(finishes[i]) for i in (0, -1))
    assert timedelta(days=29) < last - first < timedelta(days=30)
    assert last <= datetime.now(UTC)


def write_the_normal_way(seeded: Store, normal: Store) -> None:
    """The seeded runs inserted into `normal` a few at a time, and the hours the seeded
    history summarized summarized a few runs at a time."""
    values = [tuple(row) for row in seeded.conn.execute(
        f"SELECT {', '.join(SYNTHETIC_COLUMNS)} FROM runs ORDER BY id")]
    for start in range(0, len(values), 97):
        insert_runs(normal, SYNTHETIC_COLUMNS, values[start:start + 97])
    with normal.write() as conn:
        summaries.summarize_all(conn, summaries.hour_start(summaries.mark(seeded.conn)), runs=53)


def schema(store: Store) -> list[tuple]:
    return [tuple(row) for row in store.conn.execute(
        "SELECT type, name, tbl_name, sql FROM sqlite_master ORDER BY name")]


def rows(store: Store, table: str) -> list[tuple]:
    return sorted(tuple(row) for row in store.conn.execute(f"SELECT * FROM {table}"))


def reports(store: Store, now: datetime) -> dict:
    """`report costs` by each grouping, `latency` and `pools`, over the whole history and a
    filtered week."""
    zone = ZoneInfo("Europe/Paris")
    out = {}
    for period in (Period(None, None), Period(now - timedelta(days=7), now - timedelta(days=1),
                                               "wf-7")):
        for by in ("mode", "workflow", "day"):
            out[("costs", by, period)] = cost_report(
                accounting.cost_sums(store, period, by, zone), PRICES, 15.0, by, {})
        out[("latency", period)] = latency_report(
            accounting.latency_stats(store, period, QUANTILES, zone), {})
        start = period.since or datetime.fromtimestamp(
            accounting.earliest_start(store, period) or 0.0, UTC)
        timeline = Timeline(start.timestamp(), (period.until or now).timestamp(), 24)
        out[("pools", period)] = pools_report(
            accounting.pool_use(store, period, timeline, zone), WORKERS,
            {mode: 0 for mode in ("real-time", "balanced", "eco")}, timeline, {})
    return out
