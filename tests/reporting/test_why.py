"""`why RUN_ID`: what the database says about why a run waits or ran when it did."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from easyflow_cli.core.config import load_config
from easyflow_cli.core.forecast import Forecast, Interval, Unit
from easyflow_cli.core.model import (
    CostPriority,
    Mode,
    ModeReason,
    Outcome,
    PoolName,
    RunState,
    Trigger,
)
from easyflow_cli.core.planning import PlannedRun
from easyflow_cli.core.spec import parse_workflow_text
from easyflow_cli.reporting.why import explain_run
from easyflow_cli.storage.run_queue import Hand, RunEnd, RunStart
from tests.reporting.test_advice import history

NOW = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
# No tariff hours, no eco window: the prices below do not depend on the machine's zone.
FLAT = '[costs]\noff_peak = ""\n[pools.eco]\noff_peak = ""\nworkers = 2\n'


def eco_run(store, *, deadline_h: float, not_before_h: float | None = None) -> int:
    not_before = None if not_before_h is None else NOW + timedelta(hours=not_before_h)
    planned = PlannedRun("nightly", Trigger.SCHEDULE, Mode.ECO, ModeReason.SCHEDULE,
                         CostPriority.NORMAL, NOW + timedelta(hours=deadline_h), NOW,
                         not_before, NOW + timedelta(hours=deadline_h - 1))
    return store.queue.enqueue([planned])[0]


def test_a_waiting_eco_run_says_its_window_p90_promotion_place_pools_and_limit(store, home):
    (home / "easyflow.toml").write_text(FLAT)
    store.save_workflows([parse_workflow_text(
        'name = "nightly"\nmax_concurrent = 1\n[[steps]]\nrun = ["true"]\n', "nightly.toml")],
        NOW)
    history(store, "nightly", runs=12, days=10, mode="eco", trigger="schedule",
            duration_s=1800.0)
    busy = eco_run(store, deadline_h=1)
    store.queue.claim(Mode.ECO, now=NOW, pool=PoolName.ECO, hands=[Hand("w1", 1)])
    ahead = [eco_run(store, deadline_h=h) for h in (2, 3)]
    waiting = eco_run(store, deadline_h=12, not_before_h=6)

    answer = explain_run(store, load_config(), waiting, NOW)
    assert (answer["state"], answer["mode"], answer["mode_reason"]) == ("queued", "eco",
                                                                        "schedule")
    assert answer["because"] == "a schedule fired it, and scheduled work runs eco"
    # Its p90 (half an hour) at eco's $0.05 per worker-hour, against real-time's $0.10 now.
    assert answer["window"] == {
        "not_before": "2026-11-30T18:00:00.000000Z", "waiting": True, "off_peak": False,
        "currency": "USD", "cost": 0.025, "real_time_cost": 0.05, "priced_by": "pool prices"}
    assert (answer["learned"]["runs"], answer["learned"]["p90_s"], answer["learned"]["mode"]) == (
        12, 1800.0, "eco")
    assert answer["promote_at"] == "2026-11-30T23:00:00.000000Z"
    assert answer["queue"] == {"ready": False, "ahead": 2, "queued": 3}
    assert answer["pools"]["eco"] == {"workers": 2, "running": 1}
    assert answer["limit"] == {"max_concurrent": 1, "running": 1}
    assert explain_run(store, load_config(), ahead[1], NOW)["queue"]["ahead"] == 1
    assert answer["planned"] is None  # queued as given, not by the planner
    assert explain_run(store, load_config(), busy, NOW)["queue"] is None


def test_a_finished_run_says_when_it_ran_and_whether_it_met_its_deadline(store):
    run_id = eco_run(store, deadline_h=1)
    claimed = store.queue.claim(Mode.ECO, now=NOW, pool=PoolName.ECO, hands=[Hand("w", 1)])
    assert [run.id for run in claimed[0]] == [run_id]
    started = NOW + timedelta(seconds=3)
    store.queue.start([RunStart(run_id, started, NOW)])
    store.queue.finish([RunEnd(run_id, Outcome(RunState.SUCCEEDED, 0), started
                               + timedelta(minutes=2), started, NOW + timedelta(hours=1))])

    answer = explain_run(store, load_config(), run_id, NOW + timedelta(hours=2))
    assert (answer["state"], answer["queue_wait_s"], answer["deadline_met"]) == (
        "succeeded", 3.0, True)
    assert (answer["queue"], answer["pools"], answer["window"]) == (None, None, None)
    assert answer["learned"] == {"runs": 1, "enough": False, "p50_s": 120.0, "p90_s": 120.0,
                                 "error_s": None, "mode": None}


def test_a_tariff_prices_the_window_where_it_covers_it(store, home):
    (home / "easyflow.toml").write_text(FLAT)
    history(store, "nightly", runs=12, days=10, mode="eco", trigger="schedule",
            duration_s=1800.0)
    waiting = eco_run(store, deadline_h=12, not_before_h=6)
    # Twice the pools' prices now, a tenth of them at the window; the series ends at 7:00.
    tariff = Forecast(Unit.MULTIPLIER, "agile.json", (
        Interval(NOW, NOW + timedelta(hours=1), 2.0),
        Interval(NOW + timedelta(hours=6), NOW + timedelta(hours=7), 0.1)))
    window = explain_run(store, load_config(), waiting, NOW, tariff)["window"]
    assert (window["cost"], window["real_time_cost"], window["priced_by"]) == (
        pytest.approx(0.1 * 0.05 / 2), pytest.approx(2 * 0.10 / 2), "agile.json")
    later = explain_run(store, load_config(), waiting, NOW + timedelta(hours=2), tariff)
    assert later["window"]["real_time_cost"] == 0.05  # past the series: the pools' prices
