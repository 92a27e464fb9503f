"""A wake-up's state changes, written as one transaction, and how their ends are logged."""

import logging
import sqlite3
from datetime import UTC, datetime, timedelta

import pytest

from easyflow_cli.core.model import Mode, Outcome, PoolName, RunState, Trigger
from easyflow_cli.core.planning import QueuePolicy, plan_run
from easyflow_cli.core.spec import parse_workflow_text
from easyflow_cli.runtime.clock import SystemClock
from easyflow_cli.runtime.recording import Batch, EndedRun, Recorder
from easyflow_cli.storage.run_queue import Hand, RunEnd, RunStart

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)


def claimed(store, count):
    spec = parse_workflow_text('name = "w"\n[[steps]]\nrun = ["true"]\n')
    store.queue.enqueue([plan_run(spec, trigger=Trigger.MANUAL, now=NOW,
                                  policy=QueuePolicy())] * count)
    return store.queue.claim(Mode.REAL_TIME, now=NOW, pool=PoolName.REAL_TIME,
                             hands=[Hand("w", count)])[0]


def ended(run, state=RunState.SUCCEEDED, after=1.0, began_at=None):
    end = RunEnd(run.id, Outcome(state, 0 if state is RunState.SUCCEEDED else 1),
                 NOW + timedelta(seconds=after), began_at=began_at or run.claimed_at)
    return EndedRun(end, run.workflow, run.mode)


def test_starts_ends_and_changes_commit_together(store):
    runs = claimed(store, 3)
    batch = Batch(starts=[RunStart(r.id, NOW + timedelta(seconds=0.5), r.enqueued_at, 42,
                                   "/x.log") for r in runs],
                  ends=[ended(runs[0], began_at=NOW + timedelta(seconds=0.5)),
                        ended(runs[1], RunState.CANCELLED)])
    committed = []
    batch.changes.append(lambda: committed.append(store.conn.in_transaction))
    batch.after_commit.append(lambda: committed.append(store.conn.in_transaction))
    batch.apply(store)
    assert committed == [True, False]
    first, second, third = (store.queue.get(r.id) for r in runs)
    assert (first.state, first.duration_s, first.queue_wait_s, first.pid) == (
        RunState.SUCCEEDED, 0.5, 0.5, 42)
    assert second.state is RunState.CANCELLED
    assert (third.state, third.started_at is not None) == (RunState.RUNNING, True)


def test_a_run_whose_start_came_with_its_end_is_written_once(store):
    runs = claimed(store, 2)
    at = NOW + timedelta(seconds=0.5)
    batch = Batch(starts=[RunStart(r.id, at, r.enqueued_at, 42, "/x.log") for r in runs],
                  ends=[ended(runs[0], began_at=at)])
    updates: list[str] = []
    store.conn.set_trace_callback(
        lambda sql: updates.append(sql) if sql.startswith("UPDATE runs") else None)
    batch.apply(store)
    store.conn.set_trace_callback(None)
    assert [sql.split(" WHERE id = ")[1] for sql in updates] == [str(r.id) for r in reversed(runs)]
    first, second = (store.queue.get(r.id) for r in runs)
    assert (first.state, first.pid, first.queue_wait_s) == (RunState.SUCCEEDED, 42, 0.5)
    assert (second.state, second.pid) == (RunState.RUNNING, 42)


def test_claims_are_written_with_the_changes_or_not_at_all(store):
    recorder = Recorder(store, SystemClock())
    runs = claimed(store, 1)
    claims = []

    def claim():
        claims.append(store.conn.in_transaction)
        return ["claimed"]

    def refused():
        raise sqlite3.OperationalError("database or disk is full")

    recorder.batch.ends.append(ended(runs[0]))
    assert recorder.write_with(claim) == ["claimed"] and claims == [True]
    recorder.record(refused)
    assert recorder.write_with(claim) == [] and claims == [True]
    assert not recorder.healthy and len(recorder.backlog) == 1
    assert recorder.write_with(claim) == [] and claims == [True]  # nothing while changes wait
    assert store.queue.get(runs[0].id).state is RunState.SUCCEEDED


def test_a_failed_write_leaves_nothing_behind(store):
    runs = claimed(store, 2)
    batch = Batch(ends=[ended(runs[0])])

    def boom():
        raise RuntimeError("boom")

    batch.changes.append(boom)
    with pytest.raises(RuntimeError):
        batch.apply(store)
    assert store.queue.get(runs[0].id).state is RunState.RUNNING


def test_many_successes_are_logged_as_one_line(store, caplog):
    runs = claimed(store, 7)
    with caplog.at_level(logging.INFO, logger="easyflow.daemon"):
        Batch(ends=[ended(r) for r in runs[:2] + runs[3:6]] + [ended(runs[6], RunState.FAILED)]
              ).apply(store)
    ids = [r.id for r in runs]
    assert caplog.messages == [
        f"5 runs succeeded (runs {ids[0]}-{ids[1]}, {ids[3]}-{ids[5]})",
        f"run {ids[6]} (w, real-time) failed in 1.00s"]
