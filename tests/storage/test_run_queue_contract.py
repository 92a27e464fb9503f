"""The contract every `RunQueue` backend passes: each arrow of a run's life, the fields it
changes, the queue's order, and the reads the daemon and the CLI rely on.

A backend plugs in as one more param of `open_queue`.
"""

import threading
from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from easyflow_cli.core.costs import Prices
from easyflow_cli.core.errors import BadInput, NotFound
from easyflow_cli.core.forecast import Forecast, Interval, Unit
from easyflow_cli.core.learned import RunSample
from easyflow_cli.core.model import (
    RUN_FIELDS,
    CostPriority,
    Mode,
    ModeReason,
    Outcome,
    PoolName,
    RunState,
    StepGroup,
    Trigger,
)
from easyflow_cli.core.offpeak import parse_window
from easyflow_cli.core.planning import PlannedRun, QueuePolicy
from easyflow_cli.core.receipts import Charges, Pricing
from easyflow_cli.core.spec import parse_workflow_text
from easyflow_cli.storage.run_queue import (
    Hand,
    HeldByLimit,
    PrunedRun,
    RunEnd,
    RunQueue,
    RunStart,
    attempt_chain,
    cancel_run,
    replan_eco,
)
from easyflow_cli.storage.store import Store

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
ECO = PoolName.ECO


@pytest.fixture(params=["sqlite", "postgresql"])
def open_queue(request, tmp_path) -> Iterator[Callable[[], RunQueue]]:
    """Opens a new connection to the queue of one backend (one param per backend)."""
    opened: list = []

    def open_sqlite() -> RunQueue:
        opened.append(Store.open(tmp_path / "home"))
        return opened[-1].queue

    def open_postgresql() -> RunQueue:
        from easyflow_cli.storage.pg_store import PgStore

        opened.append(PgStore(url))
        return opened[-1].queue

    if request.param == "postgresql":
        url = request.getfixturevalue("database_url")
    yield {"sqlite": open_sqlite, "postgresql": open_postgresql}[request.param]
    for store in opened:
        store.close()


@pytest.fixture
def run_queue(open_queue) -> RunQueue:
    return open_queue()


def planned(workflow="a", *, mode=Mode.ECO, priority=CostPriority.NORMAL, deadline=None,
            not_before=None, promote_at=None, trigger=Trigger.SCHEDULE, at=NOW,
            **extra) -> PlannedRun:
    return PlannedRun(workflow, trigger, mode, ModeReason.SCHEDULE, priority, deadline, at,
                      not_before, promote_at, **extra)


def add(queue: RunQueue, **kw) -> int:
    return queue.enqueue([planned(**kw)])[0]


def claim(queue: RunQueue, mode=Mode.ECO, now=NOW, room=10, worker="w", batch_id=None):
    return queue.claim(mode, now=now, pool=PoolName.of(mode),
                       hands=[Hand(worker, room, batch_id)])[0]


def started(queue: RunQueue, run_id: int, at=NOW + timedelta(seconds=2)) -> None:
    queue.start([RunStart(run_id, at, NOW, pid=123, log_path="/x.log", off_peak=True)])


def ended(queue: RunQueue, run_id: int, outcome: Outcome, at: datetime) -> list[int]:
    return queue.finish([RunEnd.of(queue.get(run_id), outcome, at)])


def finished_run(queue: RunQueue, workflow="a", at=NOW, state=RunState.SUCCEEDED) -> int:
    """A run of the workflow that started at NOW and ended `at`."""
    run_id = add(queue, workflow=workflow)
    queue.claim_ids([run_id], now=NOW, pool=ECO, worker="w")
    started(queue, run_id, at=NOW)
    ended(queue, run_id, Outcome(state, 0), at)
    return run_id


# ---------------------------------------------------------------------- enqueue


def test_enqueue_sets_the_plan_and_nothing_else(run_queue):
    deadline = NOW + timedelta(hours=3)
    run_id = add(run_queue, deadline=deadline, not_before=NOW + timedelta(minutes=1),
                 promote_at=NOW + timedelta(hours=2), attempt=2, retry_of=7, rerun_of=5,
                 schedule_id=3, priority=CostPriority.HIGH, followed=False)
    run = run_queue.get(run_id)
    assert (run.id, run.workflow, run.trigger, run.mode, run.mode_reason, run.cost_priority) == (
        run_id, "a", Trigger.SCHEDULE, Mode.ECO, ModeReason.SCHEDULE, CostPriority.HIGH)
    assert (run.state, run.deadline, run.enqueued_at) == (RunState.QUEUED, deadline, NOW)
    assert (run.not_before, run.promote_at) == (NOW + timedelta(minutes=1),
                                                NOW + timedelta(hours=2))
    assert (run.attempt, run.retry_of, run.rerun_of, run.schedule_id) == (2, 7, 5, 3)
    assert run.followed is False and run_queue.get(add(run_queue)).followed is None
    unset = ("claimed_at", "started_at", "finished_at", "exit_code", "batch_id", "pool", "worker",
             "pid", "pgid", "cpu_user_s", "cpu_system_s", "peak_rss_kb", "queue_wait_s",
             "duration_s", "off_peak", "deadline_met", "energy_j", "error", "log_path",
             "not_before_reason")
    assert {name: getattr(run, name) for name in unset} == dict.fromkeys(unset)


def test_bulk_enqueue_gives_consecutive_ids_in_order(run_queue):
    first = add(run_queue)
    ids = run_queue.enqueue([planned(f"w{i}") for i in range(50)])
    assert list(ids) == list(range(first + 1, first + 51))
    assert [run_queue.get(i).workflow for i in (ids[0], ids[-1])] == ["w0", "w49"]
    assert run_queue.unfinished_count(ids) == 50
    assert run_queue.enqueue([]) == range(0)


def test_bulk_enqueues_from_two_connections_at_once_each_get_consecutive_ids(open_queue):
    queues = [open_queue(), open_queue()]
    given: list[list[range]] = [[], []]

    def submit(number: int) -> None:
        for _ in range(20):
            given[number].append(queues[number].enqueue([planned(f"w{number}")] * 25))

    threads = [threading.Thread(target=submit, args=(n,)) for n in (0, 1)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    workflow_of = {run.id: run.workflow for run in queues[0].latest(limit=1000)}
    for number, ranges in enumerate(given):
        assert all(len(ids) == 25 for ids in ranges)
        assert {workflow_of[i] for ids in ranges for i in ids} == {f"w{number}"}


def test_get_of_an_unknown_run_is_not_found(run_queue):
    for run_id in (999, 2**70, -1):
        with pytest.raises(NotFound):
            run_queue.get(run_id)


# ---------------------------------------------------------------------- claim


def test_claim_order_is_deadline_then_priority_then_first_in(run_queue):
    low = add(run_queue, workflow="low", priority=CostPriority.LOW)
    high = add(run_queue, workflow="high", priority=CostPriority.HIGH)
    normal = add(run_queue, workflow="normal")
    normal2 = add(run_queue, workflow="normal")
    later = add(run_queue, priority=CostPriority.LOW, deadline=NOW + timedelta(hours=6))
    due = add(run_queue, priority=CostPriority.LOW, deadline=NOW + timedelta(hours=5))
    assert [r.id for r in claim(run_queue)] == [due, later, high, normal, normal2, low]


def test_claim_sets_its_fields_and_hands_back_what_dispatch_needs(run_queue):
    deadline = NOW + timedelta(hours=5)
    run_id = add(run_queue, deadline=deadline, priority=CostPriority.HIGH)
    later = NOW + timedelta(seconds=1)
    [claimed] = claim(run_queue, now=later, worker="eco-1", batch_id="b1")
    assert (claimed.id, claimed.workflow, claimed.mode, claimed.cost_priority) == (
        run_id, "a", Mode.ECO, CostPriority.HIGH)
    assert (claimed.deadline, claimed.enqueued_at, claimed.claimed_at) == (deadline, NOW, later)
    run = run_queue.get(run_id)
    assert (run.state, run.claimed_at, run.pool, run.worker, run.batch_id) == (
        RunState.RUNNING, later, PoolName.ECO, "eco-1", "b1")
    assert run.started_at is None


def test_claim_keeps_modes_apart_and_respects_not_before(run_queue):
    later = add(run_queue, not_before=NOW + timedelta(minutes=5))
    first = add(run_queue)
    add(run_queue, mode=Mode.REAL_TIME)
    assert [r.id for r in claim(run_queue)] == [first]
    assert run_queue.next_ready_at(Mode.ECO, NOW) == NOW + timedelta(minutes=5)
    assert run_queue.next_ready_at(Mode.BALANCED, NOW) is None
    assert [r.id for r in claim(run_queue, now=NOW + timedelta(minutes=5))] == [later]
    assert [r.mode for r in claim(run_queue, Mode.REAL_TIME)] == [Mode.REAL_TIME]


def test_claim_order_spans_runs_that_waited_and_runs_that_never_did(run_queue):
    """A run whose `not_before` has come is ready like one that had none: one queue order."""
    came = NOW - timedelta(minutes=1)
    low_waited = add(run_queue, priority=CostPriority.LOW, not_before=came)
    normal = add(run_queue)
    high_waited = add(run_queue, priority=CostPriority.HIGH, not_before=came)
    still_waiting = add(run_queue, priority=CostPriority.HIGH, deadline=NOW + timedelta(hours=1),
                        not_before=NOW + timedelta(minutes=1))
    due = add(run_queue, deadline=NOW + timedelta(hours=2))
    due_waited = add(run_queue, deadline=NOW + timedelta(hours=3), not_before=NOW)
    normal_waited = add(run_queue, not_before=came)
    assert [r.id for r in claim(run_queue, room=3)] == [due, due_waited, high_waited]
    assert [r.id for r in claim(run_queue)] == [normal, normal_waited, low_waited]
    assert run_queue.next_ready_at(Mode.ECO, NOW) == NOW + timedelta(minutes=1)
    assert run_queue.depths()[Mode.ECO] == 1
    assert [r.id for r in claim(run_queue, now=NOW + timedelta(minutes=1))] == [still_waiting]


def test_claim_respects_the_room_and_shares_a_batch(run_queue):
    ids = [add(run_queue) for _ in range(4)]
    batch = claim(run_queue, room=3, batch_id="b1")
    assert [r.id for r in batch] == ids[:3]
    assert {run_queue.get(r.id).batch_id for r in batch} == {"b1"}
    assert run_queue.depths() == {Mode.REAL_TIME: 0, Mode.BALANCED: 0, Mode.ECO: 1}


def test_claim_for_several_workers_deals_best_first_in_turn(run_queue):
    ids = [add(run_queue) for _ in range(5)]
    hands = run_queue.claim(Mode.ECO, now=NOW, pool=ECO,
                            hands=[Hand("a", 1), Hand("b", 3), Hand("c", 3)])
    assert [[r.id for r in hand] for hand in hands] == [[ids[0]], [ids[1], ids[3]],
                                                        [ids[2], ids[4]]]
    assert {r.id: r.worker for r in run_queue.latest()} == {
        ids[0]: "a", ids[1]: "b", ids[3]: "b", ids[2]: "c", ids[4]: "c"}
    assert run_queue.claim(Mode.ECO, now=NOW, pool=ECO, hands=[Hand("a", 1)]) == [[]]
    assert run_queue.claim(Mode.ECO, now=NOW, pool=ECO, hands=[]) == []


def test_claim_with_nothing_ready_changes_nothing(run_queue):
    run_id = add(run_queue, not_before=NOW + timedelta(minutes=1))
    assert claim(run_queue) == []
    assert claim(run_queue, Mode.REAL_TIME) == []
    assert run_queue.get(run_id).state is RunState.QUEUED


def test_claim_ids_takes_given_runs_once(run_queue, open_queue):
    other = open_queue()
    waiting = add(run_queue, not_before=NOW + timedelta(hours=1))
    [claimed] = run_queue.claim_ids([waiting], now=NOW, pool=PoolName.FOREGROUND, worker="cli:1")
    assert claimed.id == waiting
    assert other.claim_ids([waiting], now=NOW, pool=PoolName.FOREGROUND, worker="cli:2") == []
    run = other.get(waiting)
    assert (run.state, run.pool, run.worker, run.claimed_at) == (
        RunState.RUNNING, PoolName.FOREGROUND, "cli:1", NOW)
    assert claim(other, now=NOW + timedelta(hours=2)) == []


def limit(queue: RunQueue, workflow: str, max_concurrent: int) -> None:
    """Register the workflow with a `max_concurrent`, as the backend's store does."""
    spec = parse_workflow_text(f'name = "{workflow}"\nmax_concurrent = {max_concurrent}\n'
                               '[[steps]]\nrun = ["true"]\n')
    queue.store.save_workflows([spec], NOW)  # type: ignore[attr-defined]


def test_claim_keeps_a_workflow_within_its_max_concurrent(run_queue):
    limit(run_queue, "a", 2)
    a1, a2, a3 = run_queue.enqueue([planned("a", mode=Mode.REAL_TIME)] * 3)
    b1 = add(run_queue, workflow="b", mode=Mode.REAL_TIME)
    taken = claim(run_queue, Mode.REAL_TIME, room=5)
    assert [run.id for run in taken] == [a1, a2, b1]
    assert claim(run_queue, Mode.REAL_TIME, room=5) == []
    assert run_queue.get(a3).state is RunState.QUEUED and run_queue.get(a3).worker is None
    ended(run_queue, a1, Outcome(RunState.SUCCEEDED, 0), NOW)
    assert [run.id for run in claim(run_queue, Mode.REAL_TIME, room=5)] == [a3]


def test_max_concurrent_counts_running_runs_of_every_mode_and_pool(run_queue):
    limit(run_queue, "a", 1)
    eco, fast = add(run_queue), add(run_queue, mode=Mode.REAL_TIME)
    assert [run.id for run in claim(run_queue)] == [eco]
    assert run_queue.claim_ids([fast], now=NOW, pool=PoolName.FOREGROUND, worker="cli:1") == []
    assert claim(run_queue, Mode.REAL_TIME) == []
    ended(run_queue, eco, Outcome(RunState.SUCCEEDED, 0), NOW)
    [claimed] = run_queue.claim_ids([fast], now=NOW, pool=PoolName.FOREGROUND, worker="cli:1")
    assert claimed.id == fast


def test_held_by_limit_names_the_workflows_waiting_for_their_max_concurrent(run_queue):
    limit(run_queue, "a", 1)
    limit(run_queue, "b", 2)
    run_queue.enqueue([planned("a")] * 3 + [planned("b")] * 2)
    assert run_queue.held_by_limit() == []
    claim(run_queue)
    assert run_queue.held_by_limit() == [HeldByLimit("a", 1, 1, 2)]


def test_two_connections_never_claim_the_same_run(run_queue, open_queue):
    ids = run_queue.enqueue([planned() for _ in range(300)])
    queues = [open_queue(), open_queue()]
    taken: list[list[int]] = [[], []]

    def drain(number: int) -> None:
        while runs := claim(queues[number], room=7, worker=f"w{number}"):
            taken[number] += [r.id for r in runs]

    threads = [threading.Thread(target=drain, args=(n,)) for n in (0, 1)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not set(taken[0]) & set(taken[1])
    assert sorted(taken[0] + taken[1]) == list(ids)


def test_two_connections_claiming_at_once_keep_a_workflow_within_its_max_concurrent(
        run_queue, open_queue):
    limit(run_queue, "a", 3)
    run_queue.enqueue([planned("a")] * 40 + [planned("b")] * 40)
    queues = [open_queue(), open_queue()]
    taken: list[list[str]] = [[], []]

    def drain(number: int) -> None:
        while runs := claim(queues[number], room=2, worker=f"w{number}"):
            taken[number] += [run.workflow for run in runs]

    threads = [threading.Thread(target=drain, args=(n,)) for n in (0, 1)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    claimed = taken[0] + taken[1]
    assert (claimed.count("a"), claimed.count("b")) == (3, 40)
    assert run_queue.depths()[Mode.ECO] == 37


# ---------------------------------------------------------------------- start, finish


def test_start_records_when_where_and_the_queue_wait(run_queue):
    run_id = add(run_queue)
    claim(run_queue)
    started(run_queue, run_id)
    run = run_queue.get(run_id)
    assert (run.started_at, run.pid, run.log_path, run.off_peak, run.queue_wait_s) == (
        NOW + timedelta(seconds=2), 123, "/x.log", True, 2.0)
    group = StepGroup(4567, 123456, "boot")
    run_queue.record_step(run_id, group)
    assert (run_queue.get(run_id).pgid, run_queue.step_group(run_id)) == (4567, group)


def test_finish_records_the_outcome_and_measures(run_queue):
    run_id = add(run_queue, deadline=NOW + timedelta(hours=2))
    claim(run_queue)
    started(run_queue, run_id)
    outcome = Outcome(RunState.SUCCEEDED, 0, None, 0.5, 0.25, 2048, 1.5)
    assert ended(run_queue, run_id, outcome, NOW + timedelta(seconds=5.5)) == []
    run = run_queue.get(run_id)
    assert (run.state, run.finished_at, run.exit_code, run.error) == (
        RunState.SUCCEEDED, NOW + timedelta(seconds=5.5), 0, None)
    assert (run.cpu_user_s, run.cpu_system_s, run.peak_rss_kb, run.energy_j) == (
        0.5, 0.25, 2048, 1.5)
    assert (run.queue_wait_s, run.duration_s, run.deadline_met) == (2.0, 3.5, True)
    assert run_queue.typical_duration("a") == timedelta(seconds=3.5)
    assert run_queue.recent_successes("a") == [
        RunSample(NOW + timedelta(seconds=5.5), 3.5, 0.75, 1.5)]
    assert run_queue.recent_successes("a", Mode.REAL_TIME) == []
    assert len(run_queue.recent_successes("a", Mode.ECO)) == 1
    assert run_queue.unfinished_count(range(run_id, run_id + 1)) == 0
    assert run_queue.last_finished_at(range(run_id, run_id + 1)) == NOW + timedelta(seconds=5.5)


def test_finish_records_a_missed_deadline_and_none_without_one(run_queue):
    tight = add(run_queue, deadline=NOW + timedelta(seconds=1))
    free = add(run_queue)
    claim(run_queue)
    failed = Outcome(RunState.FAILED, 1, "boom")
    for run_id in (tight, free):
        ended(run_queue, run_id, failed, NOW + timedelta(seconds=3))
    assert (run_queue.get(tight).deadline_met, run_queue.get(tight).error) == (False, "boom")
    assert run_queue.get(free).deadline_met is None
    assert run_queue.get(free).duration_s == 3.0  # counted from the claim: it never started
    assert run_queue.typical_duration("a") is None  # only successes count
    assert run_queue.recent_successes("a") == []


def test_finish_keeps_the_measured_duration_across_a_clock_jump(run_queue):
    run_id = add(run_queue)
    claim(run_queue)
    started(run_queue, run_id)
    measured = Outcome(RunState.SUCCEEDED, 0, duration_s=3.0)
    ended(run_queue, run_id, measured, NOW + timedelta(days=2, seconds=5))
    run = run_queue.get(run_id)
    assert (run.finished_at, run.duration_s) == (NOW + timedelta(days=2, seconds=5), 3.0)
    assert run_queue.typical_duration("a") == timedelta(seconds=3)


def test_finish_leaves_a_run_that_is_no_longer_running(run_queue):
    queued = add(run_queue)
    outcome = Outcome(RunState.SUCCEEDED, 0)
    assert run_queue.finish([RunEnd(queued, outcome, NOW, NOW)]) == [queued]
    assert run_queue.get(queued).state is RunState.QUEUED
    assert run_queue.finish([]) == []


def test_finish_records_a_start_that_came_with_the_end(run_queue):
    ran, gone = add(run_queue), add(run_queue)
    claim(run_queue)
    run_queue.finish([RunEnd(gone, Outcome(RunState.FAILED), NOW, NOW)])  # its start alone
    at = NOW + timedelta(seconds=2)
    ends = [RunEnd(run_id, Outcome(RunState.SUCCEEDED, 0), at + timedelta(seconds=1), at,
                   start=RunStart(run_id, at, NOW, pid=7, log_path="/r.log", off_peak=False))
            for run_id in (ran, gone)]
    assert run_queue.finish(ends) == [gone]
    for run_id, state in ((ran, RunState.SUCCEEDED), (gone, RunState.FAILED)):
        run = run_queue.get(run_id)
        assert (run.state, run.started_at, run.pid, run.log_path, run.off_peak,
                run.queue_wait_s) == (state, at, 7, "/r.log", False, 2.0)
    assert run_queue.get(ran).duration_s == 1.0


class LoadedSeries:
    """A `PricingSource` with a tariff and a carbon forecast over the hours around NOW."""

    def __init__(self) -> None:
        hour = timedelta(hours=1)
        prices = Prices({m: (0.10, 0.05) for m in Mode}, 0.0, "USD")
        start = NOW - hour
        self.pricing = Pricing(prices, 15.0, series(Unit.PER_KWH, start, [0.30, 0.20]),
                               series(Unit.G_CO2_PER_KWH, start, [400, 200]))

    def current(self) -> Pricing:
        return self.pricing


def series(unit: Unit, start: datetime, values: list[float]) -> Forecast:
    hour = timedelta(hours=1)
    return Forecast(unit, f"test {unit}", tuple(
        Interval(start + i * hour, start + (i + 1) * hour, v) for i, v in enumerate(values)))


def test_finish_charges_runs_under_the_series_loaded(run_queue):
    run_queue.pricing = LoadedSeries()
    run_id = add(run_queue, at=NOW - timedelta(minutes=30))
    claim(run_queue)
    started(run_queue, run_id)  # at NOW + 2 s
    ended(run_queue, run_id, Outcome(RunState.SUCCEEDED, 0, None, 3000.0, 600.0, 0, 3.6e6),
          NOW + timedelta(seconds=62))
    charges = run_queue.charges(run_id)
    assert charges.tariff_cost == pytest.approx(0.20)  # 1 kWh, measured
    assert charges.tariff_baseline_cost == pytest.approx(0.30)
    assert (charges.carbon_g, charges.baseline_carbon_g) == (pytest.approx(200),
                                                             pytest.approx(400))
    assert (charges.tariff_source, charges.carbon_source) == ("test per_kwh", "test gCO2/kWh")


def test_finish_charges_nothing_without_series(run_queue):
    run_id = add(run_queue)
    claim(run_queue)
    ended(run_queue, run_id, Outcome(RunState.SUCCEEDED, 0), NOW + timedelta(seconds=3))
    assert run_queue.charges(run_id) == Charges()


# ---------------------------------------------------------------------- requeue


def test_requeue_clears_the_claim_and_puts_runs_back_first_in_line(run_queue):
    ids = [add(run_queue) for _ in range(3)]
    claim(run_queue, room=2, batch_id="b")
    started(run_queue, ids[0])
    run_queue.record_step(ids[0], StepGroup(99, 1, "boot"))
    run_queue.requeue(ids[:2], "given back")
    run = run_queue.get(ids[0])
    assert (run.state, run.error) == (RunState.QUEUED, "given back")
    cleared = ("claimed_at", "started_at", "pool", "worker", "batch_id", "pid", "pgid",
               "queue_wait_s")
    assert {name: getattr(run, name) for name in cleared} == dict.fromkeys(cleared)
    assert run_queue.step_group(ids[0]) is None
    again = claim(run_queue, worker="v")
    assert [r.id for r in again] == ids
    assert [run_queue.get(i).worker for i in ids] == ["v", "v", "v"]


def test_requeue_leaves_runs_that_are_not_running(run_queue):
    queued, finished = add(run_queue), add(run_queue)
    claim(run_queue, room=1)
    claim(run_queue, room=1)
    ended(run_queue, finished, Outcome(RunState.SUCCEEDED, 0), NOW)
    run_queue.requeue([finished], "no")
    assert run_queue.get(finished).state is RunState.SUCCEEDED
    assert run_queue.get(queued).error is None


# ---------------------------------------------------------------------- cancel


def test_cancel_ends_queued_runs_only(run_queue):
    queued, running = add(run_queue, workflow="q"), add(run_queue, workflow="r")
    run_queue.claim_ids([running], now=NOW, pool=ECO, worker="w")
    later = NOW + timedelta(minutes=1)
    assert run_queue.cancel([queued, running, 999], now=later, error="stop") == [queued]
    run = run_queue.get(queued)
    assert (run.state, run.finished_at, run.error) == (RunState.CANCELLED, later, "stop")
    assert run_queue.get(running).state is RunState.RUNNING
    assert run_queue.cancel([], now=later, error="stop") == []


def test_cancel_of_a_finished_run_is_refused(run_queue):
    run_id = add(run_queue)
    assert cancel_run(run_queue, run_id, now=NOW).state is RunState.CANCELLED
    assert run_queue.cancel([run_id], now=NOW + timedelta(hours=1), error="again") == []
    assert run_queue.get(run_id).finished_at == NOW
    with pytest.raises(BadInput, match="already ended"):
        cancel_run(run_queue, run_id, now=NOW)
    with pytest.raises(NotFound):
        cancel_run(run_queue, 999, now=NOW)


# ---------------------------------------------------------------------- promote, defer


def test_promote_turns_due_runs_real_time(run_queue):
    run_id = add(run_queue, deadline=NOW + timedelta(hours=3), promote_at=NOW + timedelta(hours=2),
                 not_before=NOW + timedelta(hours=2, minutes=30))
    other = add(run_queue, promote_at=NOW + timedelta(hours=4))
    assert run_queue.next_promotion_at() == NOW + timedelta(hours=2)
    assert run_queue.promote(NOW + timedelta(minutes=119)) == []
    assert run_queue.promote(NOW + timedelta(hours=2)) == [run_id]
    run = run_queue.get(run_id)
    assert (run.mode, run.mode_reason, run.not_before, run.promote_at) == (
        Mode.REAL_TIME, ModeReason.PROMOTED, None, None)
    assert run_queue.next_promotion_at() == NOW + timedelta(hours=4)
    assert run_queue.get(other).mode is Mode.ECO


def test_promote_skips_runs_no_longer_queued(run_queue):
    run_id = add(run_queue, promote_at=NOW)
    claim(run_queue)
    assert run_queue.next_promotion_at() is None
    assert run_queue.promote(NOW + timedelta(hours=1)) == []
    assert run_queue.get(run_id).mode is Mode.ECO


def test_defer_and_replan_off_peak(run_queue):
    window = parse_window("22:00-06:00")
    local_noon = datetime(2026, 11, 25, 12, 0).astimezone()
    opens = window.next_start(local_noon)
    deadline = local_noon + timedelta(days=2)
    eco = add(run_queue, deadline=deadline)
    retry = add(run_queue, trigger=Trigger.RETRY, not_before=NOW)
    real_time = add(run_queue, mode=Mode.REAL_TIME)
    assert run_queue.off_peak_waiting() == [(eco, "a", deadline)]
    assert replan_eco(run_queue, QueuePolicy(off_peak=window), local_noon, no_estimate) == 1
    assert run_queue.get(eco).not_before == opens
    assert run_queue.get(eco).not_before_reason == "off-peak window 22:00-06:00"
    assert replan_eco(run_queue, QueuePolicy(), local_noon, no_estimate) == 1
    assert (run_queue.get(eco).not_before, run_queue.get(eco).not_before_reason) == (None, None)
    assert run_queue.get(retry).not_before == NOW
    run_queue.defer([(eco, opens, "why"), (real_time, opens, "why")])
    assert (run_queue.get(eco).not_before, run_queue.get(eco).not_before_reason) == (opens, "why")


def test_replan_eco_plans_waiting_runs_by_the_forecast_once_per_workflow(run_queue):
    from easyflow_cli.core.config import Optimise
    from easyflow_cli.core.eco_plan import RunEstimate, Series
    from easyflow_cli.core.forecast import Forecast, Interval, Unit

    hour = timedelta(hours=1)
    prices = Forecast(Unit.PER_KWH, "t.csv", tuple(
        Interval(NOW + i * hour, NOW + (i + 1) * hour, v) for i, v in enumerate([0.3, 0.2, 0.1])))
    policy = QueuePolicy(optimise=Optimise.COST, series=Series(Optimise.COST, prices))
    first, second = add(run_queue), add(run_queue)
    asked = []

    def estimate(workflow):
        asked.append(workflow)
        return RunEstimate(hour, 1.0)

    assert replan_eco(run_queue, policy, NOW, estimate) == 2
    assert asked == ["a"]
    for run_id in (first, second):
        assert run_queue.get(run_id).not_before == NOW + 2 * hour
        assert run_queue.get(run_id).not_before_reason.startswith("cheapest window")


def no_estimate(workflow):
    return None


# ---------------------------------------------------------------------- settle abandoned


def test_settle_abandoned_requeues_unstarted_runs_and_fails_started_ones(run_queue):
    unstarted, begun, done = (add(run_queue, deadline=NOW + timedelta(hours=1))
                              for _ in range(3))
    claim(run_queue, room=3)
    started(run_queue, begun)
    ended(run_queue, done, Outcome(RunState.SUCCEEDED, 0), NOW + timedelta(seconds=1))
    failed = run_queue.settle_abandoned([unstarted, begun, done], now=NOW + timedelta(seconds=5),
                                        note="back", error="its worker died")
    assert [run.id for run in failed] == [begun]
    run = failed[0]
    assert (run.state, run.error, run.finished_at, run.duration_s, run.deadline_met) == (
        RunState.FAILED, "its worker died", NOW + timedelta(seconds=5), 3.0, True)
    assert (run.exit_code, run.cpu_user_s, run.peak_rss_kb) == (None, 0.0, 0)
    requeued = run_queue.get(unstarted)
    assert (requeued.state, requeued.error, requeued.claimed_at) == (RunState.QUEUED, "back", None)
    assert run_queue.get(done).state is RunState.SUCCEEDED
    assert run_queue.settle_abandoned([], now=NOW, note="", error="") == []


def test_settle_abandoned_enqueues_the_next_attempt_of_the_failed_runs_it_is_given(run_queue):
    unstarted, begun, last = (add(run_queue) for _ in range(3))
    claim(run_queue, room=3)
    started(run_queue, begun)
    started(run_queue, last)
    later = NOW + timedelta(seconds=5)
    asked: list[int] = []

    def next_attempt(run):
        asked.append(run.id)
        if run.id == last:
            return None
        return replace(planned(trigger=Trigger.RETRY, at=later), attempt=2, retry_of=run.id)

    failed = run_queue.settle_abandoned([unstarted, begun, last], now=later, note="back",
                                        error="gone", next_attempt=next_attempt)
    assert sorted(run.id for run in failed) == sorted(asked) == [begun, last]
    [retry] = [run for run in run_queue.latest(state=RunState.QUEUED) if run.retry_of]
    assert (retry.retry_of, retry.attempt, retry.state) == (begun, 2, RunState.QUEUED)
    assert run_queue.get(unstarted).attempt == 1  # put back, not retried


# ---------------------------------------------------------------------- reads


def test_retried_as_finds_the_next_attempt_and_attempt_chain_walks_both_ways(run_queue):
    first = add(run_queue, rerun_of=3)
    other = add(run_queue)
    second = add(run_queue, trigger=Trigger.RETRY, attempt=2, retry_of=first, rerun_of=3)
    third = add(run_queue, trigger=Trigger.RETRY, attempt=3, retry_of=second, rerun_of=3)
    assert run_queue.retried_as(first).id == second
    assert run_queue.retried_as(third) is None and run_queue.retried_as(other) is None
    assert run_queue.retried_as(2**70) is None
    for member in (first, second, third):
        assert [run.id for run in attempt_chain(run_queue, member)] == [first, second, third]
    assert [run.id for run in attempt_chain(run_queue, other)] == [other]
    with pytest.raises(NotFound):
        attempt_chain(run_queue, 999)


def test_attempt_chain_starts_where_history_does(run_queue):
    """A retry whose first attempt is no longer kept still lists itself and what followed."""
    orphan = add(run_queue, trigger=Trigger.RETRY, attempt=2, retry_of=999)
    last = add(run_queue, trigger=Trigger.RETRY, attempt=3, retry_of=orphan)
    assert [run.id for run in attempt_chain(run_queue, last)] == [orphan, last]


def test_latest_filters_newest_first(run_queue):
    a = add(run_queue, workflow="a")
    add(run_queue, workflow="b")
    run_queue.cancel([a], now=NOW, error="x")
    assert [r.workflow for r in run_queue.latest()] == ["b", "a"]
    assert [r.workflow for r in run_queue.latest(workflow="a")] == ["a"]
    assert [r.workflow for r in run_queue.latest(state=RunState.QUEUED)] == ["b"]
    assert len(run_queue.latest(limit=1)) == 1


def test_ahead_of_counts_the_ready_runs_of_its_mode_served_before_it(run_queue):
    late = add(run_queue, deadline=NOW + timedelta(hours=5))
    urgent = add(run_queue, deadline=NOW + timedelta(hours=1))
    add(run_queue, deadline=NOW + timedelta(hours=2), not_before=NOW + timedelta(hours=1))
    add(run_queue, mode=Mode.BALANCED)
    high = add(run_queue, deadline=NOW + timedelta(hours=5), priority=CostPriority.HIGH)
    assert [run_queue.ahead_of(i, NOW) for i in (urgent, high, late)] == [0, 1, 2]
    assert run_queue.ahead_of(late, NOW + timedelta(hours=1)) == 3  # the deferred one is ready
    claim(run_queue, room=1)
    assert run_queue.ahead_of(urgent, NOW) == 0 and run_queue.ahead_of(late, NOW) == 1
    assert run_queue.ahead_of(999, NOW) == 0


def test_running_queued_ids_and_depths(run_queue):
    ids = [add(run_queue, workflow="a") for _ in range(3)]
    add(run_queue, workflow="b", mode=Mode.BALANCED)
    run_queue.claim_ids([ids[1]], now=NOW, pool=ECO, worker="w")
    assert [r.id for r in run_queue.running()] == [ids[1]]
    assert run_queue.queued_ids("a") == [ids[0], ids[2]]
    assert run_queue.depths() == {Mode.REAL_TIME: 0, Mode.BALANCED: 1, Mode.ECO: 2}


def test_has_pending_recurring(run_queue):
    add(run_queue, workflow="manual", trigger=Trigger.MANUAL)
    assert not run_queue.has_pending_recurring("manual")
    for trigger in (Trigger.SCHEDULE, Trigger.CATCH_UP, Trigger.RETRY):
        run_id = add(run_queue, workflow=trigger.value, trigger=trigger)
        assert run_queue.has_pending_recurring(trigger.value)
        run_queue.cancel([run_id], now=NOW, error="x")
        assert not run_queue.has_pending_recurring(trigger.value)


def test_typical_duration_is_the_median_of_recent_successes(run_queue):
    for seconds in (1, 2, 10, 4):
        run_id = add(run_queue)
        run_queue.claim_ids([run_id], now=NOW, pool=ECO, worker="w")
        ended(run_queue, run_id, Outcome(RunState.SUCCEEDED, 0), NOW + timedelta(seconds=seconds))
    assert run_queue.typical_duration("a") == timedelta(seconds=3)
    assert run_queue.typical_duration("a", sample=1) == timedelta(seconds=4)
    assert run_queue.typical_duration("other") is None


# ---------------------------------------------------------------------- notification events


def watching(queue: RunQueue, *events, retries: int = 2, workflow: str = "a") -> None:
    from easyflow_cli.core.notify import Event, NoticeBook, NotifySpec

    on = tuple(events) or (Event.FAILURE, Event.RECOVERY)
    spec = NotifySpec(on=on, webhook="http://127.0.0.1:9/hook", command=("page",))
    queue.notices = NoticeBook.build(NotifySpec(), dict.fromkeys(Mode, 60.0),
                                     [(workflow, spec, retries)])


def attempt(queue: RunQueue, state: RunState, number: int = 1, *, workflow: str = "a",
            at: datetime = NOW, duration: float = 1.0) -> int:
    run_id = add(queue, workflow=workflow, mode=Mode.REAL_TIME, attempt=number)
    claim(queue, Mode.REAL_TIME, now=at)
    ended(queue, run_id, Outcome(state, exit_code=1, duration_s=duration), at)
    return run_id


def outbox_rows(queue: RunQueue) -> list[tuple]:
    return [(r["event"], r["run_id"], r["channel"], r["state"])
            for r in reversed(queue.store.outbox.recent(100))]


def test_finish_writes_one_failure_per_incident_after_the_last_retry(run_queue):
    watching(run_queue)
    first = attempt(run_queue, RunState.FAILED, 1)
    attempt(run_queue, RunState.FAILED, 2)
    last = attempt(run_queue, RunState.TIMED_OUT, 3)
    attempt(run_queue, RunState.FAILED, 3)  # the same incident: told already
    fixed = attempt(run_queue, RunState.SUCCEEDED)
    attempt(run_queue, RunState.SUCCEEDED)
    assert outbox_rows(run_queue) == [
        ("failure", last, "command", "pending"), ("failure", last, "webhook", "pending"),
        ("recovery", fixed, "command", "pending"), ("recovery", fixed, "webhook", "pending")]
    assert run_queue.events_written == 2
    failure = run_queue.store.outbox.due(NOW, 10)[0].payload
    assert failure["incident"] == {"first_run": first, "attempts": 3,
                                   "since": "2026-11-25T12:00:00.000000Z"}
    assert {k: failure[k] for k in RUN_FIELDS} == run_queue.get(last).to_record()


def test_finish_writes_nothing_for_a_workflow_without_a_rule(run_queue):
    attempt(run_queue, RunState.FAILED, 3)
    watching(run_queue, workflow="other")
    attempt(run_queue, RunState.FAILED, 3)
    assert outbox_rows(run_queue) == [] and run_queue.events_written == 0


def test_an_end_and_its_events_commit_together_or_not_at_all(run_queue):
    watching(run_queue)
    run_id = add(run_queue, mode=Mode.REAL_TIME, attempt=3)
    claim(run_queue, Mode.REAL_TIME)
    with pytest.raises(RuntimeError), run_queue.store.write():
        ended(run_queue, run_id, Outcome(RunState.FAILED), NOW)
        raise RuntimeError("the transaction fails after the end")
    assert run_queue.get(run_id).state is RunState.RUNNING
    assert outbox_rows(run_queue) == []
    ended(run_queue, run_id, Outcome(RunState.FAILED), NOW)
    assert [row[0] for row in outbox_rows(run_queue)] == ["failure", "failure"]


def test_finish_writes_slow_once_five_successes_are_learned(run_queue):
    from easyflow_cli.core.notify import Event

    watching(run_queue, Event.SLOW)
    for _ in range(5):
        attempt(run_queue, RunState.SUCCEEDED, duration=0.05)
    slow = attempt(run_queue, RunState.SUCCEEDED, duration=1.0)
    attempt(run_queue, RunState.SUCCEEDED, duration=0.05)
    assert {(event, run_id) for event, run_id, _, _ in outbox_rows(run_queue)} == {
        ("slow", slow)}
    payload = run_queue.store.outbox.due(NOW, 10)[0].payload
    assert payload["baseline"] == {"runs": 5, "p5_s": 0.05, "p95_s": 0.05}


# ---------------------------------------------------------------------- prune


def test_prune_removes_finished_runs_only_and_gives_their_logs(run_queue):
    done = finished_run(run_queue)
    cancelled = add(run_queue)
    run_queue.cancel([cancelled], now=NOW, error="x")
    queued, running = add(run_queue), add(run_queue)
    run_queue.claim_ids([running], now=NOW, pool=ECO, worker="w")
    pruned = run_queue.prune([done, cancelled, queued, running, 10**30], zone=UTC)
    assert sorted(pruned, key=lambda p: p.run_id) == [PrunedRun(done, "/x.log"),
                                                      PrunedRun(cancelled, None)]
    for gone in (done, cancelled):
        with pytest.raises(NotFound):
            run_queue.get(gone)
    assert run_queue.get(queued).state is RunState.QUEUED
    assert run_queue.get(running).state is RunState.RUNNING
    assert run_queue.prune([done], zone=UTC) == []


def test_finished_before_gives_the_earliest_first_and_filters(run_queue):
    hours = [finished_run(run_queue, workflow=f"w{h % 2}", at=NOW + timedelta(hours=h))
             for h in (3, 1, 2, 5)]
    add(run_queue)  # queued: never past keeping
    cutoff = NOW + timedelta(hours=4)
    assert run_queue.finished_before(cutoff, limit=10) == [hours[1], hours[2], hours[0]]
    assert run_queue.finished_before(cutoff, limit=2) == [hours[1], hours[2]]
    assert run_queue.finished_before(cutoff, workflow="w1", limit=10) == [hours[1], hours[0]]
    assert run_queue.finished_before(NOW, limit=10) == []
    assert run_queue.oldest_finished_at() == NOW + timedelta(hours=1)


def test_beyond_newest_keeps_the_newest_finished_runs(run_queue):
    runs = [finished_run(run_queue, workflow="k") for _ in range(5)]
    finished_run(run_queue, workflow="other")
    add(run_queue, workflow="k")  # queued: neither counted nor given
    assert run_queue.beyond_newest("k", 2, limit=10) == runs[:3]
    assert run_queue.beyond_newest("k", 2, limit=2) == runs[:2]
    assert run_queue.beyond_newest("k", 5, limit=10) == []
    assert run_queue.beyond_newest("none", 1, limit=10) == []


def test_settle_abandoned_charges_a_run_that_had_started_as_finish_does(run_queue):
    run_queue.pricing = LoadedSeries()
    run_id = add(run_queue, at=NOW - timedelta(minutes=30))
    claim(run_queue)
    started(run_queue, run_id)  # at NOW + 2 s
    [failed] = run_queue.settle_abandoned([run_id], now=NOW + timedelta(seconds=62),
                                          note="given back", error="its daemon died")
    assert (failed.id, failed.state) == (run_id, RunState.FAILED)
    # A minute with no CPU time or energy measured (its worker died with it): charged as such,
    # under the series loaded, rather than left without charges.
    assert run_queue.charges(run_id) == Charges(0.0, 0.0, "test per_kwh", 0.0, 0.0,
                                                "test gCO2/kWh")
