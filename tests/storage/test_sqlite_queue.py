"""What only the SQLite backend promises, beyond the queue's contract."""

from datetime import UTC, datetime

from easyflow_cli.core.model import CostPriority, Mode, ModeReason, PoolName, Trigger
from easyflow_cli.core.planning import PlannedRun
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

