"""Runs changed by other means than easyflow: one line naming the run and the field wherever
they are read, and the queue serves around them."""

from __future__ import annotations

import logging
from datetime import UTC, datetime

import pytest

from easyflow_cli.core.errors import DamagedRow
from easyflow_cli.core.model import CostPriority, Mode, ModeReason, PoolName, Trigger
from easyflow_cli.core.planning import PlannedRun
from easyflow_cli.reporting.accounting import Period, cost_sums, latency_stats
from easyflow_cli.storage.run_queue import Hand

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)


def queue_three(store) -> list[int]:
    planned = PlannedRun("w", Trigger.MANUAL, Mode.REAL_TIME, ModeReason.MANUAL,
                         CostPriority.NORMAL, None, NOW)
    return list(store.queue.enqueue([planned] * 3))


def change(store, run_id: int, column: str, value: object) -> None:
    store.conn.execute(f"UPDATE runs SET {column} = ? WHERE id = ?", (value, run_id))


@pytest.mark.parametrize(("column", "value"), [
    ("state", "bogus"), ("mode", "turbo"), ("trigger", "cron"), ("mode_reason", "x\x1b[2J"),
    ("cost_priority", "urgent"), ("pool", "gpu"), ("enqueued_at", "yesterday"),
])
def test_reading_a_changed_run_names_it_and_its_field(store, column, value):
    run_id = queue_three(store)[1]
    change(store, run_id, column, value)
    with pytest.raises(DamagedRow) as raised:
        store.queue.get(run_id)
    assert str(raised.value) == (
        f"run {run_id}: its {column} is {value!r}, which easyflow never writes (the database "
        "was changed by other means); correct or delete that run")
    with pytest.raises(DamagedRow):
        store.queue.latest()


def test_a_claim_settles_a_changed_run_as_failed_and_serves_the_others(store, caplog):
    first, second, third = queue_three(store)
    change(store, first, "cost_priority", "urgent")
    [claimed] = store.queue.claim(Mode.REAL_TIME, now=NOW, pool=PoolName.REAL_TIME,
                                  hands=[Hand("w", 2)])
    assert [run.id for run in claimed] == [second]  # the changed one took the other place
    [again] = store.queue.claim(Mode.REAL_TIME, now=NOW, pool=PoolName.REAL_TIME,
                                hands=[Hand("w", 2)])
    assert [run.id for run in again] == [third]
    state, error = store.conn.execute("SELECT state, error FROM runs WHERE id = ?",
                                      (first,)).fetchone()
    assert state == "failed" and error.startswith(f"run {first}: its cost_priority is 'urgent'")
    assert f"run {first}: its cost_priority is 'urgent'" in caplog.text


def test_the_running_runs_and_the_depths_leave_a_changed_run_out(store, caplog):
    first, second, third = queue_three(store)
    store.queue.claim(Mode.REAL_TIME, now=NOW, pool=PoolName.REAL_TIME, hands=[Hand("w", 2)])
    change(store, first, "pool", "gpu")
    change(store, third, "mode", "turbo")
    with caplog.at_level(logging.ERROR):
        assert [run.id for run in store.queue.running()] == [second]
    assert f"run {first}: its pool is 'gpu'" in caplog.text
    assert store.queue.depths() == dict.fromkeys(Mode, 0)


def test_reports_name_a_run_with_a_mode_easyflow_never_writes(store):
    run_id = queue_three(store)[2]
    store.conn.execute("UPDATE runs SET state = 'succeeded', finished_at = ?, duration_s = 1",
                       ("2026-11-25T12:00:01Z",))
    change(store, run_id, "mode", "turbo")
    for report in (cost_sums, latency_stats):
        with pytest.raises(DamagedRow, match=f"^run {run_id}: its mode is 'turbo'"):
            report(store, Period(None, None), *(() if report is cost_sums else ((50,),)))
