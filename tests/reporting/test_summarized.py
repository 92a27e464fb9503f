"""Reports over summarized hours: every report (latency's attainment too) and the metrics the
same before and after the hours are summarized (to the cent, to the run, percentiles exactly),
however far the summaries reach, and again after runs change in summarized hours (a late insert
or finish, pruning)."""

from datetime import timedelta
from zoneinfo import ZoneInfo

import pytest

from easyflow_cli.core.model import Outcome, RunState
from easyflow_cli.core.timeutil import to_iso
from easyflow_cli.reporting import summarized
from easyflow_cli.reporting.accounting import Period
from easyflow_cli.reporting.run_totals import run_totals
from easyflow_cli.storage import summaries
from easyflow_cli.storage.run_queue import RunEnd
from easyflow_cli.storage.sqlite_queue import insert_runs
from easyflow_cli.storage.store import Store
from tests.reporting.test_reports_sql import (
    COLUMNS,
    PERIODS,
    T0,
    assert_close,
    varied_runs,
)
from tests.reporting.test_rolled_up import CUTOFF, END, periods, prune_before
from tests.reporting.test_rolled_up import reports as rolled_up_reports

# A day beginning on the hour, across a DST change; and one beginning at a quarter past.
ZONES = ["America/New_York", "Asia/Kathmandu"]


def reports(store: Store, zone: ZoneInfo) -> dict:
    """Every report over periods at local midnights and at odd times, and the metrics."""
    out = rolled_up_reports(store, zone, PERIODS)
    totals = run_totals(store)
    out["metrics"] = {"runs": totals.runs, "usage": totals.usage,
                      **{f"{name}-{mode}": vars(histogram) for name, by_mode in
                         (("durations", totals.durations), ("waits", totals.waits))
                         for mode, histogram in by_mode.items()}}
    return out


def summarize(store: Store, hours: int) -> None:
    with store.write() as conn:
        summaries.summarize_all(conn, T0 + timedelta(hours=hours), runs=53)


def assert_same(after: dict, before: dict) -> None:
    assert after.keys() == before.keys()
    for key in before:
        assert_close(after[key], before[key])
        if key[0] == "costs":
            assert round(after[key]["total_cost"], 2) == round(before[key]["total_cost"], 2)


@pytest.fixture(params=ZONES)
def zone(request):
    return ZoneInfo(request.param)


@pytest.fixture
def store(tmp_path):
    with Store.open(tmp_path / "home") as store:
        insert_runs(store, COLUMNS, varied_runs(600))
        yield store


@pytest.mark.parametrize("hours", [30, 24 * 5 + 7, 24 * 12])
def test_reports_are_the_same_before_and_after_summarizing(store, zone, hours):
    before = reports(store, zone)
    summarize(store, hours)
    assert summaries.mark(store.conn) is not None
    assert_same(reports(store, zone), before)


def test_a_run_written_into_a_summarized_hour_makes_it_dirty_until_summarized_again(
        store, zone):
    summarize(store, 24 * 12)
    late = [row for row in varied_runs(40, seed=11) if row[10] is not None][:5]
    insert_runs(store, COLUMNS, late)
    dirty = summaries.dirty_hours(store.conn)
    assert dirty == {row[10][:13] for row in late}
    before = reports(store, zone)
    with store.write() as conn:
        summaries.summarize_all(conn, END)
    assert summaries.dirty_hours(store.conn) == set()
    assert_same(reports(store, zone), before)


def test_pruning_summarized_hours_keeps_every_report(store, zone):
    summarize(store, 24 * 12)
    before = reports(store, zone)
    prune_before(store, CUTOFF, zone)
    assert summaries.dirty_hours(store.conn)
    pruned_dirty = reports(store, zone)
    with store.write() as conn:
        summaries.summarize_all(conn, END)
    after = reports(store, zone)
    # Pruned history counts in whole local days: the periods that begin and end at midnight.
    for key in (k for k in before if k[0] == "costs" and k[-1] < len(periods(zone))):
        assert round(pruned_dirty[key]["total_cost"], 2) == round(before[key]["total_cost"], 2)
        assert round(after[key]["total_cost"], 2) == round(before[key]["total_cost"], 2)
    assert_same(after, pruned_dirty)


def finish_one(store: Store, at) -> None:
    """A run that was running, finished at `at` through the queue."""
    started = at - timedelta(minutes=5)
    run_id, = insert_runs(store, COLUMNS, [(
        "wf-1", "manual", "eco", "manual", "normal", 1, "running", to_iso(started),
        to_iso(started), to_iso(started), None, None, None, None, None, 0.0, 1, None, "eco")])
    outcome = Outcome(RunState.SUCCEEDED, 0, None, 1.0, 0.1, 0, None, 300.0)
    store.queue.finish([RunEnd(run_id, outcome, at, started)])


def test_a_finish_recorded_after_its_hour_was_summarized_makes_it_dirty(store, zone):
    summarize(store, 24 * 12)
    late = T0 + timedelta(days=3, minutes=30)
    finish_one(store, late)
    assert summaries.dirty_hours(store.conn) == {summaries.hour_of(late)}
    in_detail = reports(store, zone)
    with store.write() as conn:
        summaries.summarize_all(conn, END)
    assert summaries.dirty_hours(store.conn) == set()
    assert_same(reports(store, zone), in_detail)


def test_a_finish_in_an_hour_not_summarized_marks_none(store):
    summarize(store, 24 * 5)
    finish_one(store, T0 + timedelta(days=6))
    assert summaries.dirty_hours(store.conn) == set()


def test_summaries_of_other_sums_are_made_again(store, monkeypatch):
    summarize(store, 24 * 12)
    monkeypatch.setattr(summaries, "COLUMNS", (*summaries.COLUMNS, "receipt_cost"))
    assert not summaries.current(store.conn)
    period = Period(None, None)
    assert summarized.whole(summarized.coverage(store, period.since, period.until))
