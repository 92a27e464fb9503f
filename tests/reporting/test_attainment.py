"""User satisfaction: which runs kept their mode's objective, counted per mode, per workflow,
and the pairs that kept it least."""

from datetime import UTC, datetime, timedelta

from easyflow_cli.core.model import Mode
from easyflow_cli.core.objectives import Objectives
from easyflow_cli.core.timeutil import to_iso
from easyflow_cli.reporting.accounting import Period
from easyflow_cli.reporting.attainment import WORST, attainment_report, kept_counts
from easyflow_cli.storage.store import Store

T0 = datetime(2026, 11, 25, tzinfo=UTC)
OBJECTIVES = Objectives({Mode.REAL_TIME: 1.0, Mode.BALANCED: 60.0}, 3600.0)


def insert(store, rows):
    """(workflow, mode, wait, duration, deadline_met), each finished at T0 plus its index."""
    with store.write() as conn:
        for index, (workflow, mode, wait, duration, met) in enumerate(rows):
            at = to_iso(T0 + timedelta(minutes=index))
            conn.execute(
                "INSERT INTO runs (workflow, trigger, mode, mode_reason, cost_priority,"
                " priority_rank, state, enqueued_at, started_at, finished_at, duration_s,"
                " queue_wait_s, deadline_met) VALUES (?, 'manual', ?, 'manual', 'normal', 1,"
                " 'succeeded', ?, ?, ?, ?, ?, ?)",
                (workflow, mode, at, at, at, duration, wait, met))


def report(store, period=None, objectives=OBJECTIVES):
    period = period or Period(None, None)
    return attainment_report(kept_counts(store, period, objectives), objectives)


def test_each_mode_is_held_to_its_own_objective(tmp_path):
    with Store.open(tmp_path / "home") as store:
        insert(store, [
            ("a", "real-time", 0.5, 1.0, None),     # started within 1 s: kept
            ("a", "real-time", 1.0, 1.0, None),     # at the limit: kept
            ("a", "real-time", 5.0, 1.0, None),     # late
            ("a", "real-time", 600.0, 1.0, 1),      # promoted, finished by its deadline: kept
            ("b", "balanced", 59.0, 1.0, None),     # kept
            ("b", "balanced", 61.0, 1.0, 0),        # late, and missed its deadline
            ("c", "eco", 7200.0, 60.0, 1),          # waited for a window, met its deadline
            ("c", "eco", 10.0, 60.0, 0),            # missed its deadline, however soon it began
            ("c", "eco", 3000.0, 60.0, None),       # no deadline: started within max_delay
            ("c", "eco", 4000.0, 60.0, None),       # no deadline: started too late
        ])
        got = report(store)
    assert got["by_mode"] == {
        "real-time": {"runs": 4, "met": 3, "missed": 1, "attainment_pct": 75.0},
        "balanced": {"runs": 2, "met": 1, "missed": 1, "attainment_pct": 50.0},
        "eco": {"runs": 4, "met": 2, "missed": 2, "attainment_pct": 50.0},
    }
    assert got["by_workflow"]["a"] == {"runs": 4, "met": 3, "missed": 1, "attainment_pct": 75.0}
    # Least kept first; of two kept as often, the one that missed more.
    assert [(w["workflow"], w["mode"]) for w in got["worst"]] == [
        ("c", "eco"), ("b", "balanced"), ("a", "real-time")]
    assert got["objectives"]["eco"] == {"deadline": True, "max_delay_s": 3600.0}


def test_worst_offenders_are_the_few_that_kept_it_least(tmp_path):
    rows = [(f"w{i}", "real-time", 5.0 if j < i else 0.0, 1.0, None)
            for i in range(WORST + 3) for j in range(WORST + 3)]
    with Store.open(tmp_path / "home") as store:
        insert(store, rows)
        got = report(store)
    assert [w["workflow"] for w in got["worst"]] == [f"w{i}" for i in range(WORST + 2, 2, -1)]
    assert "w0" not in {w["workflow"] for w in got["worst"]}  # kept it every time


def test_a_mode_without_an_objective_is_not_counted_and_periods_filter(tmp_path):
    none_for_balanced = Objectives({Mode.REAL_TIME: 1.0, Mode.BALANCED: None}, 3600.0)
    with Store.open(tmp_path / "home") as store:
        insert(store, [("a", "balanced", 600.0, 1.0, None), ("a", "real-time", 0.0, 1.0, None),
                       ("b", "real-time", 9.0, 1.0, None)])
        got = report(store, objectives=none_for_balanced)
        only_b = report(store, Period(None, None, "b"))
        later = report(store, Period(T0 + timedelta(minutes=1), None))
    assert set(got["by_mode"]) == {"real-time", "eco"}
    assert got["by_workflow"]["a"]["runs"] == 1
    assert list(only_b["by_workflow"]) == ["b"] and only_b["by_mode"]["real-time"]["met"] == 0
    assert later["by_mode"]["real-time"]["runs"] == 2 and "balanced" in later["by_mode"]
    assert later["by_mode"]["eco"] == {"runs": 0, "met": 0, "missed": 0, "attainment_pct": None}
