"""The totals behind the metrics: off the indexes, run by run, and kept by the daemon between
scrapes, all alike on a varied history, also as its runs end and new ones come."""

from __future__ import annotations

import pytest

from easyflow_cli.core.timeutil import to_iso
from easyflow_cli.reporting import run_totals as totals_module
from easyflow_cli.reporting.run_totals import (
    RUN_COLUMNS,
    RunTotals,
    SettledTotals,
    run_totals,
    settled_mark,
    table_totals,
    totals_of,
)
from easyflow_cli.storage.sqlite_queue import insert_runs
from easyflow_cli.storage.store import Store
from tests.reporting.test_reports_sql import COLUMNS, T0, varied_runs


@pytest.fixture
def store(tmp_path):
    with Store.open(tmp_path / "home") as opened:
        insert_runs(opened, COLUMNS, varied_runs(400))
        yield opened


def plain(totals: RunTotals) -> dict:
    """The totals as comparable values: floats to 9 significant digits (sums in another order)."""
    def number(value):
        return float(f"{value:.9g}")

    def histograms(by_mode):
        return {mode: (h.cumulative, h.count, number(h.total)) for mode, h in by_mode.items()}

    return {"runs": totals.runs, "durations": histograms(totals.durations),
            "waits": histograms(totals.waits),
            "usage": {key: {name: number(value) for name, value in sums.items()}
                      for key, sums in totals.usage.items() if sums["runs"]}}


def test_runs_read_one_by_one_add_up_as_the_index_queries_count_them(store):
    rows = store.conn.execute(f"SELECT {', '.join(RUN_COLUMNS)} FROM runs").fetchall()
    assert plain(totals_of(rows)) == plain(table_totals(store))
    assert plain(table_totals(store))["runs"]


def test_the_settled_mark_is_the_oldest_unfinished_run(store):
    unfinished = [row[0] for row in store.conn.execute(
        "SELECT id FROM runs WHERE state IN ('queued', 'running') ORDER BY id")]
    assert settled_mark(store) == unfinished[0]
    store.conn.execute("UPDATE runs SET state = 'cancelled', finished_at = ?"
                       " WHERE state IN ('queued', 'running')", (to_iso(T0),))
    assert settled_mark(store) == 401


def end_unfinished_runs(store: Store, count: int) -> None:
    """The oldest `count` queued or running runs end, as the queue would record them."""
    with store.write() as conn:
        for (run_id,) in conn.execute(
            "SELECT id FROM runs WHERE finished_at IS NULL ORDER BY id LIMIT ?", (count,),
        ).fetchall():
            conn.execute("UPDATE runs SET state = 'succeeded', finished_at = ?, duration_s = 2.5,"
                         " queue_wait_s = 0.04, started_at = ?, cpu_user_s = 1.0,"
                         " cpu_system_s = 0.5 WHERE id = ?", (to_iso(T0), to_iso(T0), run_id))


def test_kept_totals_move_on_with_the_mark_and_always_equal_a_whole_read(store, monkeypatch):
    settled = SettledTotals()
    assert plain(settled.read(store)) == plain(run_totals(store))
    first_mark = settled.mark

    def whole_read_again(*args):
        raise AssertionError("the kept totals were read again")

    monkeypatch.setattr(totals_module, "table_totals", whole_read_again)
    for _ in range(3):
        end_unfinished_runs(store, 7)
        insert_runs(store, COLUMNS, varied_runs(30, seed=len(store.queue.latest(limit=1000))))
        monkeypatch.undo()
        expected = plain(run_totals(store))
        monkeypatch.setattr(totals_module, "table_totals", whole_read_again)
        assert plain(settled.read(store)) == expected
    assert settled.mark > first_mark


def test_pruned_runs_make_the_kept_totals_read_again(store, monkeypatch):
    settled = SettledTotals()
    settled.read(store)
    reads = []
    monkeypatch.setattr(totals_module, "pruned_count", lambda store: 5)
    monkeypatch.setattr(totals_module, "table_totals",
                        lambda store, below=None: reads.append(below) or RunTotals())
    settled.read(store)
    assert reads == [settled_mark(store)]


def test_pruning_never_lowers_a_counter(store):
    """What `rate()` reads as a reset must not happen: every count and sum after pruning all
    ended runs equals the one before; the histograms keep their counts, and a pruned run moves
    at most to a neighbouring bucket (the rollup sketch's error)."""
    from datetime import UTC

    before = run_totals(store)
    ended = [row[0] for row in store.conn.execute(
        "SELECT id FROM runs WHERE finished_at IS NOT NULL")]
    with store.write():
        store.queue.prune(ended, zone=UTC)
    assert store.conn.execute("SELECT count(*) FROM runs WHERE finished_at IS NOT NULL"
                              ).fetchone()[0] == 0
    after = run_totals(store)
    assert after.runs == before.runs
    assert priced(after) == priced(before)
    for mode, histogram in before.durations.items():
        pruned = after.durations[mode]
        assert pruned.count == histogram.count
        assert pruned.total == pytest.approx(histogram.total)
        moved = sum(abs(a - b) for a, b in zip(pruned.cumulative, histogram.cumulative,
                                                   strict=True))
        assert moved <= histogram.count * 0.05
    assert {mode: h.count for mode, h in after.waits.items()} == {
        mode: h.count for mode, h in before.waits.items()}
    settled = SettledTotals()
    assert plain(settled.read(store)) == plain(after)


def priced(totals: RunTotals) -> dict:
    """The usage as it is priced: by mode and tariff (a run of no known tariff is at peak)."""
    merged: dict = {}
    for (mode, off_peak), sums in totals.usage.items():
        into = merged.setdefault((mode, bool(off_peak)), dict.fromkeys(sums, 0))
        for name, value in sums.items():
            into[name] += value
    return {key: {name: float(f"{value:.9g}") for name, value in sums.items()}
            for key, sums in merged.items()}
