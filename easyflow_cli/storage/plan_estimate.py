"""What the eco planner expects of a workflow's next run: its p90 duration and energy, learned
from its recent successful runs (the one place the planner reads them)."""

from __future__ import annotations

from easyflow_cli.core.eco_plan import RunEstimate, Series, estimate_from
from easyflow_cli.core.learned import learn
from easyflow_cli.core.planning import QueuePolicy
from easyflow_cli.storage.run_queue import RunQueue


def eco_estimate(queue: RunQueue, workflow: str, policy: QueuePolicy) -> RunEstimate | None:
    """The estimate a run of `workflow` is planned by, when `policy` plans by a forecast (else
    None, and nothing is read)."""
    if policy.series is None:
        return None
    return run_estimate(queue, workflow, policy.series)


def run_estimate(queue: RunQueue, workflow: str, series: Series) -> RunEstimate:
    learned = learn(queue.recent_successes(workflow))
    if learned.enough:
        return estimate_from(learned, None, series)
    typical = queue.typical_duration(workflow)
    return estimate_from(learned, typical.total_seconds() if typical else None, series)
