"""A manual run is planned with its workflow's learned durations: promoted in time for its p90."""

from datetime import UTC, datetime, timedelta

from easyflow_cli.cli.submit import plan_manual_run
from easyflow_cli.core.config import CostConfig
from easyflow_cli.core.model import Mode
from easyflow_cli.core.planning import QueuePolicy
from easyflow_cli.core.spec import parse_workflow_text
from easyflow_cli.storage.store import Store

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)


def test_a_manual_eco_run_with_a_deadline_is_promoted_in_time_for_its_p90(tmp_path):
    spec = parse_workflow_text('name = "w"\n[[steps]]\nrun = ["true"]\n')
    with Store.open(tmp_path / "home") as store:
        store.save_workflows([spec], NOW)
        with store.write() as conn:
            for index in range(6):
                at = (NOW - timedelta(hours=index + 1)).isoformat()
                conn.execute(
                    "INSERT INTO runs (workflow, trigger, mode, mode_reason, cost_priority,"
                    " priority_rank, state, enqueued_at, finished_at, duration_s) VALUES"
                    " ('w', 'manual', 'eco', 'explicit', 'normal', 1, 'succeeded', ?, ?, 7200)",
                    (at, at))
        planned = plan_manual_run(store, spec, QueuePolicy(), mode=Mode.ECO, deadline="6h",
                                  followed=True, now=NOW, costs=CostConfig())
        tight = plan_manual_run(store, spec, QueuePolicy(), mode=Mode.ECO, deadline="90m",
                                followed=True, now=NOW)
    assert planned.deadline == NOW + timedelta(hours=6)
    assert planned.promote_at == NOW + timedelta(hours=4)
    # Beyond promote_within (1 h), but its two hours no longer fit: promoted at once.
    assert (tight.mode, tight.mode_reason.value) == (Mode.REAL_TIME, "promoted")
