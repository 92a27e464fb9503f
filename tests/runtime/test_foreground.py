from datetime import UTC, datetime

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
from easyflow_cli.runtime.foreground import run_in_foreground
from easyflow_cli.storage.run_queue import Hand, HeldByLimit, RunEnd

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)


def test_a_foreground_run_waits_for_its_workflow_s_max_concurrent(store, home):
    spec = parse_workflow_text('name = "w"\nmax_concurrent = 1\n[[steps]]\nrun = ["true"]\n')
    store.save_workflows([spec], NOW)
    plan = PlannedRun("w", Trigger.MANUAL, Mode.REAL_TIME, ModeReason.MANUAL,
                      CostPriority.NORMAL, None, NOW, None, None)
    busy, mine = store.queue.enqueue([plan, plan])
    store.queue.claim(Mode.REAL_TIME, now=NOW, pool=PoolName.REAL_TIME, hands=[Hand("x", 1)])
    waits = []

    def on_wait(held):  # the other run ends while this one waits
        waits.append(held)
        store.queue.finish([RunEnd(busy, Outcome(RunState.SUCCEEDED, 0), NOW, NOW, None)])

    ended = run_in_foreground(store, home, store.queue.get(mine), spec, load_config(), None,
                              on_wait)
    assert waits == [HeldByLimit("w", 1, 1, 1)]
    assert ended.state is RunState.SUCCEEDED and ended.pool is PoolName.FOREGROUND
