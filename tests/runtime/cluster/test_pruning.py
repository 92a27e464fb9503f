"""History retention on a cluster's PostgreSQL, a pass at a time with a fake clock: what
`[history] keep` and `keep_runs` say goes, rolled up so that the reports and the metrics' totals
stay as they were (the daemon's pruning on SQLite keeps the same promises, test_daemon.py)."""

from datetime import UTC, datetime, timedelta

import pytest

from easyflow_cli.core.config import load_config
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
from easyflow_cli.reporting.run_totals import run_totals
from easyflow_cli.storage.run_queue import RunEnd, RunStart
from tests.runtime.test_daemon import FakeClock

pytest.importorskip("psycopg", reason="the [cluster] extra is not installed")
from easyflow_cli.runtime.cluster.pruning import HistoryPruning  # noqa: E402
from easyflow_cli.storage.pg_store import PgStore  # noqa: E402

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)


@pytest.fixture
def pg(database_url):
    with PgStore(database_url) as opened:
        for name, extra in (("a", ""), ("b", "keep_runs = 3")):
            text = f'name = "{name}"\n{extra}\n[[steps]]\nrun = ["true"]\n'
            opened.save_workflows([parse_workflow_text(text)], NOW)
        yield opened


def pruning_of(pg, write, keep: str | None = None) -> tuple[HistoryPruning, FakeClock]:
    text = "" if keep is None else f'[history]\nkeep = "{keep}"\n'
    config = load_config(str(write("easyflow.toml", text)))
    clock = FakeClock(NOW)
    return HistoryPruning(lambda: pg, config, clock, batch=7), clock


def finished_runs(pg, workflow: str, count: int, days_ago: float) -> list[int]:
    at = NOW - timedelta(days=days_ago)
    plan = PlannedRun(workflow, Trigger.MANUAL, Mode.BALANCED, ModeReason.MANUAL,
                      CostPriority.NORMAL, None, at)
    ids = pg.queue.enqueue([plan] * count)
    pg.queue.claim_ids(ids, now=at, pool=PoolName.BALANCED, worker="w")
    pg.queue.start([RunStart(run_id, at, at, 99, off_peak=False) for run_id in ids])
    pg.queue.finish([RunEnd(run_id, Outcome(RunState.SUCCEEDED, 0, duration_s=2.0),
                            at + timedelta(seconds=2), at) for run_id in ids])
    return list(ids)


def remaining(pg) -> list[int]:
    return [row[0] for row in pg.conn.execute("SELECT id FROM runs ORDER BY id")]


def test_runs_past_keep_are_pruned_and_the_totals_stay_as_they_were(pg, write):
    finished_runs(pg, "a", 30, days_ago=100)  # the default keeps 90 days
    kept = finished_runs(pg, "a", 4, days_ago=10)
    before = run_totals(pg)
    pruning, clock = pruning_of(pg, write)
    assert pruning.prune(pg, clock.now()) == 30  # in batches of 7
    assert remaining(pg) == kept
    assert pg.conn.execute("SELECT sum(runs) FROM run_rollups").fetchone()[0] == 30
    after = run_totals(pg)
    assert after.runs == before.runs and after.usage == before.usage
    assert {mode: h.count for mode, h in after.durations.items()} == {"balanced": 34}
    # Nothing more until the oldest run left is past keeping.
    assert pruning.due_at == NOW - timedelta(days=10) + timedelta(seconds=2) + timedelta(days=90)


def test_a_workflows_keep_runs_keeps_its_newest_whatever_their_age(pg, write):
    finished_runs(pg, "b", 5, days_ago=1)
    newest = finished_runs(pg, "b", 3, days_ago=0.5)
    pruning, clock = pruning_of(pg, write)
    assert pruning.prune(pg, clock.now()) == 5
    assert remaining(pg) == newest
    # Looked at again a while after the coordinator wakes (runs may have finished).
    pruning.look_again(clock.now())
    assert pruning.due_at == NOW + timedelta(seconds=60)


def test_a_shorter_keep_prunes_more_and_with_nothing_finished_looks_a_keep_later(pg, write):
    pruning, clock = pruning_of(pg, write, keep="2d")
    assert pruning.prune(pg, clock.now()) == 0
    assert pruning.due_at == NOW + timedelta(days=2)  # a run finishing now, kept 2 days
    finished_runs(pg, "a", 3, days_ago=3)
    recent = finished_runs(pg, "a", 2, days_ago=1)
    pruning.look_now(clock.now())  # a reload
    assert pruning.due_at == NOW
    assert pruning.prune(pg, clock.now()) == 3
    assert remaining(pg) == recent


def test_the_thread_prunes_what_is_due_then_sleeps(pg, write, database_url):
    finished_runs(pg, "a", 3, days_ago=100)
    pruning, clock = pruning_of(pg, write)
    pruning.open_store = lambda: PgStore(database_url)
    pruning.start()
    try:
        deadline = datetime.now(UTC) + timedelta(seconds=20)
        while remaining(pg) and datetime.now(UTC) < deadline:
            pruning.woken.wait(0.02)
        assert remaining(pg) == []
    finally:
        pruning.stop()
    assert not pruning.thread.is_alive()
