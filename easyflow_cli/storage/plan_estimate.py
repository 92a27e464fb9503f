"""What the eco planner expects of a workflow's next run: its p90 duration and energy, learned
from its recent successful runs; with too few of them, the median as before (or the configured
default duration) and one busy core's energy."""

from __future__ import annotations

from datetime import timedelta

from easyflow_cli.core.eco_plan import RunEstimate, Series
from easyflow_cli.core.learned import learn
from easyflow_cli.core.planning import QueuePolicy
from easyflow_cli.storage.run_queue import RunQueue

JOULES_PER_KWH = 3.6e6


def eco_estimate(queue: RunQueue, workflow: str, policy: QueuePolicy) -> RunEstimate | None:
    """The estimate a run of `workflow` is planned by, when `policy` plans by a forecast (else
    None, and nothing is read)."""
    if policy.series is None:
        return None
    return run_estimate(queue, workflow, policy.series)


def run_estimate(queue: RunQueue, workflow: str, series: Series) -> RunEstimate:
    learned = learn(queue.recent_successes(workflow))
    watts = series.watts_per_core
    if not learned.enough or learned.duration is None or learned.cpu is None:
        typical = queue.typical_duration(workflow)
        seconds = typical.total_seconds() if typical else series.default_duration_s
        return RunEstimate(timedelta(seconds=seconds), seconds * watts / JOULES_PER_KWH)
    if learned.energy is not None:
        energy_kwh = learned.energy.p90 / JOULES_PER_KWH
    else:
        energy_kwh = learned.cpu.p90 * watts / JOULES_PER_KWH
    return RunEstimate(timedelta(seconds=learned.duration.p90), energy_kwh)
