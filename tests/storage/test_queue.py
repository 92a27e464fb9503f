from datetime import UTC, datetime, timedelta

import pytest

from easyflow_cli.core.errors import BadInput, NotFound
from easyflow_cli.core.model import Mode, RunState, Trigger
from easyflow_cli.core.offpeak import parse_window
from easyflow_cli.core.spec import parse_workflow_text
from easyflow_cli.storage.queue import (
    Outcome,
    QueuePolicy,
    cancel_run,
    claim_next_runs,
    claim_run,
    claim_runs_for_workers,
    enqueue_run,
    enqueue_runs,
    finish_run,
    get_run,
    list_runs,
    mark_started,
    next_promotion_at,
    next_ready_at,
    plan_run,
    promote_due_runs,
    queue_depths,
    requeue_runs,
    typical_duration,
    unfinished_count,
)
from easyflow_cli.storage.store import Store

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
POLICY = QueuePolicy()


def spec(name="a", extra=""):
    return parse_workflow_text(f'name = "{name}"\n{extra}\n[[steps]]\nrun = ["true"]\n')


def submit(store, wf, trigger=Trigger.SCHEDULE, now=NOW, policy=POLICY, **kw):
    return enqueue_run(store, plan_run(wf, trigger=trigger, now=now, policy=policy, **kw))


def test_plan_manual_run_is_real_time():
    row = plan_run(spec(), trigger=Trigger.MANUAL, now=NOW, policy=POLICY)
    assert (row["mode"], row["mode_reason"], row["state"]) == ("real-time", "manual", "queued")
    assert row["enqueued_at"] == "2026-11-25T12:00:00.000000Z"
    assert row["promote_at"] is None and row["not_before"] is None


def test_plan_deadline_after_and_promotion_time():
    wf = spec(extra='deadline_after = "3h"')
    row = plan_run(wf, trigger=Trigger.SCHEDULE, now=NOW, policy=POLICY)
    assert row["mode"] == "eco"
    assert row["deadline"] == "2026-11-25T15:00:00.000000Z"
    assert row["promote_at"] == "2026-11-25T14:00:00.000000Z"


def test_plan_near_deadline_is_promoted_at_once():
    row = plan_run(spec(), trigger=Trigger.SCHEDULE, now=NOW, policy=POLICY,
                   deadline=NOW + timedelta(minutes=30))
    assert (row["mode"], row["mode_reason"]) == ("real-time", "promoted")


def test_plan_eco_waits_for_off_peak_unless_deadline_would_be_missed():
    policy = QueuePolicy(off_peak=parse_window("22:00-06:00"))
    # The window is read in local time; compute what "next 22:00 local" is for the test.
    expected = policy.off_peak.next_start(NOW)
    row = plan_run(spec(), trigger=Trigger.SCHEDULE, now=NOW, policy=policy)
    if expected > NOW:
        assert row["not_before"] is not None
        assert datetime.fromisoformat(row["not_before"].replace("Z", "+00:00")) == expected
        tight = plan_run(spec(), trigger=Trigger.SCHEDULE, now=NOW, policy=policy,
                         deadline=expected - timedelta(minutes=1))
        assert tight["not_before"] is None
    manual = plan_run(spec(), trigger=Trigger.MANUAL, now=NOW, policy=policy)
    assert manual["not_before"] is None


def test_within_mode_order_deadline_then_priority_then_fifo(store):
    low = submit(store, spec("low", 'cost_priority = "low"'))
    high = submit(store, spec("high", 'cost_priority = "high"'))
    normal = submit(store, spec("normal"))
    normal2 = submit(store, spec("normal"))
    due = submit(store, spec("due", 'cost_priority = "low"'),
                 deadline=NOW + timedelta(hours=5))
    claimed = claim_next_runs(store, Mode.ECO, now=NOW, limit=10, pool="eco", worker="w1")
    assert [r["id"] for r in claimed] == [due["id"], high["id"], normal["id"], normal2["id"],
                                          low["id"]]
    assert all(r["state"] == "running" and r["worker"] == "w1" for r in claimed)


def test_claim_respects_mode_limit_and_not_before(store):
    wf = spec()
    later = submit(store, wf, not_before=NOW + timedelta(minutes=5))
    first = submit(store, wf)
    submit(store, wf, trigger=Trigger.MANUAL)
    claimed = claim_next_runs(store, Mode.ECO, now=NOW, limit=5, pool="eco", worker="w")
    assert [r["id"] for r in claimed] == [first["id"]]
    assert next_ready_at(store, Mode.ECO, NOW) == NOW + timedelta(minutes=5)
    claimed = claim_next_runs(store, Mode.ECO, now=NOW + timedelta(minutes=5), limit=5,
                              pool="eco", worker="w")
    assert [r["id"] for r in claimed] == [later["id"]]


def test_claim_is_atomic_across_connections(home):
    with Store.open(home) as one, Store.open(home) as two:
        run = submit(one, spec())
        assert claim_run(one, run["id"], now=NOW, pool="p", worker="1")
        assert not claim_run(two, run["id"], now=NOW, pool="p", worker="2")
        assert claim_next_runs(two, Mode.ECO, now=NOW, limit=1, pool="p", worker="2") == []


def test_batch_claim_shares_batch_id(store):
    for _ in range(4):
        submit(store, spec())
    batch = claim_next_runs(store, Mode.ECO, now=NOW, limit=3, pool="eco", worker="w",
                            batch_id="b1")
    assert len(batch) == 3 and {r["batch_id"] for r in batch} == {"b1"}
    assert queue_depths(store) == {"real-time": 0, "balanced": 0, "eco": 1}


def test_claim_for_several_workers_deals_best_first_in_turn(store):
    wf = spec()
    ids = [submit(store, wf)["id"] for _ in range(5)]
    hands = claim_runs_for_workers(store, Mode.ECO, now=NOW, pool="p",
                                   rooms=[("a", 1), ("b", 3), ("c", 3)])
    assert [[r["id"] for r in hand] for hand in hands] == [[ids[0]], [ids[1], ids[3]],
                                                           [ids[2], ids[4]]]
    assert {r["id"]: r["worker"] for r in list_runs(store)} == {
        ids[0]: "a", ids[1]: "b", ids[3]: "b", ids[2]: "c", ids[4]: "c"}
    assert claim_runs_for_workers(store, Mode.ECO, now=NOW, pool="p", rooms=[("a", 1)]) == [[]]


def test_released_runs_go_back_first_in_line(store):
    wf = spec()
    ids = [submit(store, wf)["id"] for _ in range(3)]
    claim_next_runs(store, Mode.ECO, now=NOW, limit=2, pool="p", worker="w")
    requeue_runs(store, ids[:2])
    again = claim_next_runs(store, Mode.ECO, now=NOW, limit=3, pool="p", worker="v")
    assert [(r["id"], r["worker"], r["claimed_at"] is not None) for r in again] == [
        (i, "v", True) for i in ids]


def test_start_and_finish_measure_times(store):
    run = submit(store, spec(), deadline=NOW + timedelta(hours=2))
    claim_run(store, run["id"], now=NOW, pool="eco", worker="w")
    mark_started(store, run["id"], now=NOW + timedelta(seconds=2), pid=123, log_path="/x")
    done = finish_run(store, run["id"], Outcome(RunState.SUCCEEDED, 0, None, 0.5, 0.25, 2048),
                      now=NOW + timedelta(seconds=5.5))
    assert done["state"] == "succeeded"
    assert (done["queue_wait_s"], done["duration_s"]) == (2.0, 3.5)
    assert (done["cpu_user_s"], done["cpu_system_s"], done["peak_rss_kb"]) == (0.5, 0.25, 2048)
    assert done["deadline_met"] is True
    assert typical_duration(store, "a") == timedelta(seconds=3.5)


def test_missed_deadline_recorded(store):
    run = submit(store, spec(), deadline=NOW + timedelta(seconds=1))
    claim_run(store, run["id"], now=NOW, pool="rt", worker="w")
    done = finish_run(store, run["id"], Outcome(RunState.FAILED, 1, "boom"),
                      now=NOW + timedelta(seconds=3))
    assert done["deadline_met"] is False and done["error"] == "boom"


def test_promotion(store):
    run = submit(store, spec(), deadline=NOW + timedelta(hours=3))
    assert run["mode"] == "eco"
    assert next_promotion_at(store) == NOW + timedelta(hours=2)
    assert promote_due_runs(store, now=NOW + timedelta(minutes=119)) == []
    assert promote_due_runs(store, now=NOW + timedelta(hours=2)) == [run["id"]]
    promoted = get_run(store, run["id"])
    assert (promoted["mode"], promoted["mode_reason"]) == ("real-time", "promoted")
    assert next_promotion_at(store) is None


def test_cancel_queued_run(store):
    run = submit(store, spec())
    cancelled = cancel_run(store, run["id"], now=NOW)
    assert cancelled["state"] == "cancelled"
    with pytest.raises(BadInput, match="already ended"):
        cancel_run(store, run["id"], now=NOW)
    with pytest.raises(NotFound):
        cancel_run(store, 999, now=NOW)


def test_list_runs_filters(store):
    a = submit(store, spec("a"))
    submit(store, spec("b"))
    cancel_run(store, a["id"], now=NOW)
    assert [r["workflow"] for r in list_runs(store)] == ["b", "a"]
    assert [r["workflow"] for r in list_runs(store, workflow="a")] == ["a"]
    assert [r["workflow"] for r in list_runs(store, state="queued")] == ["b"]
    assert len(list_runs(store, limit=1)) == 1


def test_replan_off_peak_after_window_change(store):
    window = parse_window("22:00-06:00")
    policy = QueuePolicy(off_peak=window)
    local_noon = datetime(2026, 11, 25, 12, 0).astimezone()
    run = submit(store, spec(), now=local_noon, policy=policy)
    assert run["not_before"] is not None
    from easyflow_cli.storage.queue import replan_off_peak

    assert replan_off_peak(store, QueuePolicy(off_peak=None), local_noon) == 1
    assert get_run(store, run["id"])["not_before"] is None
    replan_off_peak(store, policy, local_noon)
    assert get_run(store, run["id"])["not_before"] == run["not_before"]


def test_enqueue_runs_in_bulk_returns_consecutive_ids(store):
    wf = spec()
    submit(store, wf)
    rows = [plan_run(wf, trigger=Trigger.MANUAL, now=NOW, policy=POLICY) for _ in range(50)]
    ids = enqueue_runs(store, rows)
    assert list(ids) == list(range(2, 52))
    assert get_run(store, 51)["mode"] == "real-time"
    assert unfinished_count(store, ids) == 50
    assert enqueue_runs(store, []) == range(0)
    claimed = claim_next_runs(store, Mode.REAL_TIME, now=NOW, limit=1, pool="real-time", worker="w")
    assert [r["id"] for r in claimed] == [2]


def test_claim_and_promote_with_nothing_ready_change_nothing(store):
    wf = spec()
    submit(store, wf)  # eco: another mode's queue
    before = store.conn.total_changes
    assert claim_next_runs(store, Mode.REAL_TIME, now=NOW, limit=1, pool="p", worker="w") == []
    assert promote_due_runs(store, now=NOW) == []
    assert store.conn.total_changes == before
