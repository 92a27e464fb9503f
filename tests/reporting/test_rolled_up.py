"""Reports over pruned history: every total the same before and after pruning (to the cent,
to the run), percentiles within the sketch's stated error."""

from collections.abc import Sequence
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest

from easyflow_cli.core.costs import Prices
from easyflow_cli.core.model import Mode
from easyflow_cli.core.objectives import Objectives
from easyflow_cli.core.sketch import RELATIVE_ERROR, SMALLEST
from easyflow_cli.reporting import accounting
from easyflow_cli.reporting.accounting import Period
from easyflow_cli.reporting.attainment import attainment_report, kept_counts
from easyflow_cli.reporting.reports import QUANTILES, cost_report, latency_report, pools_report
from easyflow_cli.reporting.timeline import Timeline
from easyflow_cli.storage.sqlite_queue import insert_runs
from easyflow_cli.storage.store import Store
from tests.reporting.test_reports_sql import COLUMNS, T0, WORKERS, assert_close, varied_runs

PRICES = Prices(per_hour={Mode.REAL_TIME: (0.1, 0.06), Mode.BALANCED: (0.08, 0.05),
                          Mode.ECO: (0.05, 0.02)}, cpu_hour_price=0.01, currency="USD")
OBJECTIVES = Objectives({Mode.REAL_TIME: 1.0, Mode.BALANCED: 60.0}, 3600.0)
CUTOFF = T0 + timedelta(days=5)  # the history spans nine days (and long runs past them)
END = T0 + timedelta(days=11)


def midnight(days: int, zone: ZoneInfo) -> datetime:
    """Local midnight `days` after T0's local date."""
    return datetime.combine(date(2025, 11, 1) + timedelta(days=days), time(), zone)


def periods(zone: ZoneInfo) -> list[Period]:
    """Whole and partial spans: reaching into pruned history at local midnights, wholly
    inside it, wholly after it, per workflow."""
    return [Period(None, None), Period(None, None, "wf-1"),
            Period(midnight(2, zone), None), Period(midnight(1, zone), midnight(4, zone)),
            Period(midnight(3, zone), midnight(7, zone), "wf-2"),
            Period(CUTOFF + timedelta(hours=30), None)]


def reports(store: Store, zone: ZoneInfo, extra: Sequence[Period] = ()) -> dict:
    """Every report over `periods(zone)` and the `extra` ones."""
    out = {}
    for index, period in enumerate([*periods(zone), *extra]):
        for by in ("mode", "workflow", "day"):
            out[("costs", by, index)] = cost_report(
                accounting.cost_sums(store, period, by, zone), PRICES, 15.0, by, {})
        out[("latency", index)] = latency_report(
            accounting.latency_stats(store, period, QUANTILES, zone), {})
        out[("attainment", index)] = attainment_report(
            kept_counts(store, period, OBJECTIVES, zone), OBJECTIVES)
        start = accounting.earliest_start(store, period) if period.since is None else (
            period.since.timestamp())
        timeline = Timeline(start or 0.0, (period.until or END).timestamp(), 24)
        out[("pools", index)] = pools_report(
            accounting.pool_use(store, period, timeline, zone), WORKERS,
            {m.value: 0 for m in Mode}, timeline, {})
    return out


def prune_before(store: Store, cutoff: datetime, zone: ZoneInfo) -> int:
    pruned = 0
    while ids := store.queue.finished_before(cutoff, limit=37):
        pruned += len(store.queue.prune(ids, zone=zone))
    return pruned


@pytest.fixture(params=["UTC", "America/New_York", "Asia/Kathmandu"])
def before_and_after(request, tmp_path):
    zone = ZoneInfo(request.param)
    with Store.open(tmp_path / "home") as store:
        insert_runs(store, COLUMNS, varied_runs(600))
        before = reports(store, zone)
        assert prune_before(store, CUTOFF, zone) > 200
        assert prune_before(store, CUTOFF, zone) == 0
        yield before, reports(store, zone)


def test_costs_are_the_same_to_the_cent(before_and_after):
    before, after = before_and_after
    for key in (k for k in before if k[0] == "costs"):
        assert_close(after[key], before[key])
        assert round(after[key]["total_cost"], 2) == round(before[key]["total_cost"], 2)
        for group in before[key].get("groups", []):
            assert group["key"] in {g["key"] for g in after[key]["groups"]}


def test_latency_counts_are_the_same_and_percentiles_within_the_sketch_error(
        before_and_after):
    before, after = before_and_after
    for key in (k for k in before if k[0] == "latency"):
        for mode, was in before[key]["by_mode"].items():
            now = after[key]["by_mode"][mode]
            assert {k: now[k] for k in ("runs", "deadlines_met", "deadlines_missed")} == {
                k: was[k] for k in ("runs", "deadlines_met", "deadlines_missed")}
            for column in ("queue_wait_s", "duration_s"):
                for p, exact in was[column].items():
                    got = now[column][p]
                    if exact is None:
                        assert got is None
                    else:
                        assert abs(got - exact) <= max(RELATIVE_ERROR * exact, SMALLEST)


def test_attainment_counts_the_same_runs_and_estimates_pruned_ones_closely(before_and_after):
    """Pruned runs' waits are kept as sketches: how many kept their objective is estimated
    from them, within a few points on this history of random waits and deadlines."""
    before, after = before_and_after
    for key in (k for k in before if k[0] == "attainment"):
        for part in ("by_mode", "by_workflow"):
            for name, was in before[key][part].items():
                now = after[key][part][name]
                assert now["runs"] == was["runs"], (key, name)
                if was["runs"]:
                    assert abs(now["attainment_pct"] - was["attainment_pct"]) <= 6, (key, name)


def test_pools_totals_are_the_same(before_and_after):
    before, after = before_and_after
    for key in (k for k in before if k[0] == "pools"):
        assert after[key]["foreground_runs"] == before[key]["foreground_runs"]
        for mode, was in before[key]["pools"].items():
            now = after[key]["pools"][mode]
            assert now["runs"] == was["runs"], key
            assert now["busy_hours"] == pytest.approx(was["busy_hours"], abs=2e-6)
            assert now["utilization_pct"] == pytest.approx(was["utilization_pct"], abs=0.011)


def test_a_workflow_known_only_from_its_rollups_has_history(tmp_path):
    with Store.open(tmp_path / "home") as store:
        insert_runs(store, COLUMNS, varied_runs(40))
        prune_before(store, END + timedelta(days=30), ZoneInfo("UTC"))
        assert store.conn.execute("SELECT count(*) FROM runs WHERE finished_at IS NOT NULL"
                                  ).fetchone()[0] == 0
        assert accounting.has_history(store, "wf-1")
        assert not accounting.has_history(store, "wf-9")
