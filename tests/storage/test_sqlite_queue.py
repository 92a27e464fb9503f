"""What only the SQLite backend promises, beyond the queue's contract."""

import random
from datetime import UTC, datetime, timedelta

import pytest

from easyflow_cli.core.model import CostPriority, Mode, ModeReason, PoolName, Trigger
from easyflow_cli.core.planning import PlannedRun
from easyflow_cli.core.spec import ScheduleSpec, parse_workflow_text
from easyflow_cli.core.timeutil import to_iso
from easyflow_cli.scheduling.scheduler import add_schedule
from easyflow_cli.storage import sqlite_queue
from easyflow_cli.storage.run_queue import Hand
from easyflow_cli.storage.sqlite_queue import insert_runs

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)


def test_claim_and_promote_with_nothing_ready_take_no_write_lock(store):
    # The daemon asks on every wake-up; most answers are no, and must cost no write.
    store.queue.enqueue([PlannedRun("a", Trigger.SCHEDULE, Mode.ECO, ModeReason.SCHEDULE,
                                    CostPriority.NORMAL, None, NOW)])
    before = store.conn.total_changes
    assert store.queue.claim(Mode.REAL_TIME, now=NOW, pool=PoolName.REAL_TIME,
                             hands=[Hand("w", 1)]) == [[]]
    assert store.queue.promote(NOW) == []
    assert store.queue.cancel([2**70], now=NOW, error="x") == []
    assert store.conn.total_changes == before


def test_insert_runs_seeds_history_with_consecutive_ids(store):
    rows = [("w", "manual", "eco", "manual", "normal", 1, "succeeded", "2026-11-25T12:00:00Z")
            for _ in range(3)]
    ids = insert_runs(store, ("workflow", "trigger", "mode", "mode_reason", "cost_priority",
                              "priority_rank", "state", "enqueued_at"), rows)
    assert list(ids) == [1, 2, 3]
    assert store.queue.get(3).enqueued_at == datetime(2026, 11, 25, 12, 0, tzinfo=UTC)



# ---------------------------------------------------------------------- wake-ups read index heads

WAITING = NOW + timedelta(hours=10)


def queue_runs(store, count: int, **fields) -> None:
    store.queue.enqueue([PlannedRun("a", Trigger.SCHEDULE, fields.pop("mode", Mode.ECO),
                                    ModeReason.SCHEDULE, CostPriority.NORMAL, None, NOW, **fields)
                         for _ in range(count)])


def wake_up(store, now: datetime) -> None:
    """What one wake-up of the daemon asks the database: claim for each mode, promote, when
    the next runs become ready, which schedules are due and which is next."""
    for mode in Mode:
        store.queue.claim(mode, now=now, pool=PoolName.of(mode), hands=[Hand("w", 2)])
        store.queue.next_ready_at(mode, now)
    store.queue.promote(now)
    store.due_schedules(to_iso(now))
    store.upcoming_schedules(1)


def plans_of_a_wake_up(store, now: datetime) -> list[list[tuple[int, int, str]]]:
    """The query plan of every statement of a wake-up."""
    statements: list[str] = []
    store.conn.set_trace_callback(statements.append)
    try:
        wake_up(store, now)
    finally:
        store.conn.set_trace_callback(None)
    return [[(row[0], row[1], row[3])
             for row in store.conn.execute(f"EXPLAIN QUERY PLAN {sql}")]
            for sql in statements if sql.lstrip().startswith(("SELECT", "UPDATE"))]


def assert_reads_index_heads(plans: list[list[tuple[int, int, str]]]) -> None:
    """No table or index of runs or schedules walked whole, and no sort but the merge of the
    claim's two index heads (at most twice its room of rows, under the list of ids) and that
    of the few deferred runs whose time has come (read off runs_waiting up to now)."""
    for plan in plans:
        details = {node: detail for node, _, detail in plan}
        for _, parent, detail in plan:
            assert not detail.startswith(("SCAN runs", "SCAN schedules")), plan
            assert detail != "SCAN workflows", plan  # only its partial indexes: a few rows
            if "TEMP B-TREE" in detail and "GROUP BY" not in detail:
                beside = [d for _, p, d in plan if p == parent]
                assert (details.get(parent, "").startswith("LIST SUBQUERY")
                        or any("INDEX runs_waiting (mode=? AND not_before>? AND not_before<?)"
                               in d for d in beside)), plan


def test_a_wake_up_reads_only_index_heads_with_many_runs_waiting(store):
    limited = parse_workflow_text('name = "a"\nmax_concurrent = 5\n[[steps]]\nrun = ["true"]\n')
    store.save_workflows([limited], NOW)
    add_schedule(store, "a", ScheduleSpec("every", "1h"), NOW)
    queue_runs(store, 50, not_before=WAITING, promote_at=WAITING)
    queue_runs(store, 5)
    queue_runs(store, 5, mode=Mode.REAL_TIME)
    assert_reads_index_heads(plans_of_a_wake_up(store, NOW))
    assert_reads_index_heads(plans_of_a_wake_up(store, WAITING))  # the window opens


def instructions_of_a_wake_up(store, now: datetime) -> int:
    """How many SQLite virtual machine instructions a wake-up runs (in tens): the work it
    does, counted, not timed."""
    count = 0

    def tick() -> int:
        nonlocal count
        count += 1
        return 0

    store.conn.set_progress_handler(tick, 10)
    try:
        wake_up(store, now)
    finally:
        store.conn.set_progress_handler(None, 0)
    return count


def test_a_wake_up_does_as_much_work_with_a_hundred_times_more_waiting(store):
    store.save_workflows([parse_workflow_text('name = "a"\n[[steps]]\nrun = ["true"]\n')], NOW)
    counts = []
    for waiting, schedules in ((20, 5), (2000, 500)):
        queue_runs(store, waiting - store.queue.depths()[Mode.ECO], not_before=WAITING)
        for _ in range(schedules - len(store.schedule_rows())):
            add_schedule(store, "a", ScheduleSpec("every", "1h"), NOW)
        counts.append(instructions_of_a_wake_up(store, NOW))
    assert counts[1] <= counts[0] * 1.1, counts


def test_the_claim_takes_its_order_from_the_indexes(store, monkeypatch):
    queue_runs(store, 5, not_before=WAITING)
    queue_runs(store, 5)
    for ripe_sorted_at_most in (500, 2):  # few runs whose time came (sorted), and many
        monkeypatch.setattr(sqlite_queue, "RIPE_SORTED_AT_MOST", ripe_sorted_at_most)
        plan = plans_of_a_wake_up(store, WAITING)
        assert_reads_index_heads(plan)
        reads = {detail.split(" (")[0] for statement in plan for _, _, detail in statement
                 if detail.startswith("SEARCH runs USING")}
        assert "SEARCH runs USING INDEX runs_ready" in reads
        ripe_read = "runs_deferred" if ripe_sorted_at_most == 2 else "runs_waiting"
        assert f"SEARCH runs USING INDEX {ripe_read}" in reads


@pytest.mark.parametrize("ripe_sorted_at_most", [1000, 3])
def test_the_claim_merges_ready_and_deferred_runs_in_the_queue_order(store, monkeypatch,
                                                                    ripe_sorted_at_most):
    """However the deferred runs whose time came are read, the claim takes the same runs in
    the same order as sorting every ready run would."""
    monkeypatch.setattr(sqlite_queue, "RIPE_SORTED_AT_MOST", ripe_sorted_at_most)
    rng = random.Random(16)
    priorities = list(CostPriority)
    planned = [PlannedRun("a", Trigger.SCHEDULE, Mode.ECO, ModeReason.SCHEDULE,
                          rng.choice(priorities),
                          rng.choice([None, NOW + timedelta(hours=rng.randint(1, 4))]), NOW,
                          rng.choice([None, NOW + timedelta(minutes=rng.randint(-5, 5))]))
               for _ in range(60)]
    ids = store.queue.enqueue(planned)
    now = NOW + timedelta(minutes=1)
    expected = sorted(
        (run_id for run_id, plan in zip(ids, planned, strict=True)
         if plan.not_before is None or plan.not_before <= now),
        key=lambda run_id: (to_iso(planned[run_id - ids[0]].deadline) or "9999",
                            planned[run_id - ids[0]].cost_priority.rank, run_id))
    claimed: list[int] = []
    while batch := store.queue.claim(Mode.ECO, now=now, pool=PoolName.ECO,
                                     hands=[Hand("w", 7)])[0]:
        claimed += [run.id for run in batch]
    assert claimed == expected
