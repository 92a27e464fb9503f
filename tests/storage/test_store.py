import json
import os
import stat
from datetime import UTC, datetime

import pytest

from easyflow_cli.core.errors import NotFound
from easyflow_cli.core.model import Outcome, PoolName, RunState, Trigger
from easyflow_cli.core.planning import QueuePolicy, plan_run
from easyflow_cli.core.spec import parse_workflow_text
from easyflow_cli.storage.run_queue import RunEnd
from easyflow_cli.storage.store import MIGRATIONS, Store

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
WF = 'name = "a"\n[[steps]]\nrun = ["true"]\n[[schedules]]\ncron = "0 2 * * *"\n'


def test_database_is_private_wal_and_migrated(store, home):
    mode = stat.S_IMODE(os.stat(store.path).st_mode)
    assert mode == 0o600
    assert stat.S_IMODE(os.stat(home).st_mode) == 0o700
    assert store.conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert store.schema_version == len(MIGRATIONS)
    assert store.conn.execute("PRAGMA busy_timeout").fetchone()[0] >= 5000
    tables = {r[0] for r in store.conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert {"workflows", "schedules", "runs"} <= tables


def test_reopen_does_not_migrate_again(home):
    with Store.open(home) as first:
        first.save_workflows([parse_workflow_text(WF)], NOW)
    with Store.open(home) as second:
        assert second.get_workflow("a").name == "a"


def test_save_get_remove_workflow(store):
    spec = parse_workflow_text(WF, None)
    store.save_workflows([spec], NOW)
    assert store.get_workflow("a") == spec
    row = store.workflow_rows()[0]
    assert json.loads(row["spec_json"])["steps"] == [{"name": "step-1", "run": ["true"]}]
    assert len(store.schedule_rows("a")) == 1
    store.remove_workflow("a", NOW)
    with pytest.raises(NotFound, match="unknown workflow 'a'"):
        store.get_workflow("a")
    assert store.schedule_rows() == []


def test_removing_a_workflow_cancels_its_queued_runs_only(store):
    specs = [parse_workflow_text(WF), parse_workflow_text(WF.replace('"a"', '"b"'))]
    store.save_workflows(specs, NOW)
    plans = [plan_run(spec, trigger=Trigger.MANUAL, now=NOW, policy=QueuePolicy())
             for spec in (specs[0], specs[0], specs[0], specs[1])]
    queued, running, done, other = store.queue.enqueue(plans)
    store.queue.claim_ids([running, done], now=NOW, pool=PoolName.FOREGROUND, worker="cli:1")
    store.queue.finish([RunEnd(done, Outcome(RunState.SUCCEEDED, 0), NOW, NOW)])
    assert store.remove_workflow("a", NOW) == 1
    cancelled = store.queue.get(queued)
    assert (cancelled.state, cancelled.error, cancelled.finished_at) == (
        RunState.CANCELLED, "workflow removed", NOW)
    assert [store.queue.get(i).state for i in (running, done, other)] == [
        RunState.RUNNING, RunState.SUCCEEDED, RunState.QUEUED]


def test_readding_keeps_file_schedules_that_did_not_change(store):
    store.save_workflows([parse_workflow_text(WF)], NOW)
    first_id = store.schedule_rows("a")[0]["id"]
    store.save_workflows([parse_workflow_text(WF)], NOW)
    assert [r["id"] for r in store.schedule_rows("a")] == [first_id]
    changed = WF.replace("0 2 * * *", "0 3 * * *")
    store.save_workflows([parse_workflow_text(changed)], NOW)
    rows = store.schedule_rows("a")
    assert [r["expr"] for r in rows] == ["0 3 * * *"] and rows[0]["id"] != first_id


def test_failed_write_leaves_nothing(store):
    good = parse_workflow_text(WF)
    bad = parse_workflow_text(WF.replace('"a"', '"b"'))
    object.__setattr__(bad, "description", object())  # not storable: the insert fails
    with pytest.raises(Exception):  # noqa: B017
        store.save_workflows([good, bad], NOW)
    assert store.workflow_rows() == []


def test_nested_writes_commit_or_roll_back_as_one(store):
    with store.write():
        store.conn.execute("CREATE TABLE t (x)")
    try:
        with store.write():
            store.conn.execute("INSERT INTO t VALUES (1)")
            with store.write():
                store.conn.execute("INSERT INTO t VALUES (2)")
            raise RuntimeError("fail after the inner write")
    except RuntimeError:
        pass
    assert store.conn.execute("SELECT count(*) FROM t").fetchone()[0] == 0
    with store.write(), store.write():
        store.conn.execute("INSERT INTO t VALUES (3)")
    assert not store.conn.in_transaction
    assert store.conn.execute("SELECT count(*) FROM t").fetchone()[0] == 1
