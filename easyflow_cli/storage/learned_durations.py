"""A workflow's expected duration, CPU time and energy in a mode, from its recent successful
runs: what promotion, quotes and the planner assume of its next run.

A mode with enough runs of its own is learned from them (an eco run, niced, may take longer
than the same work in real-time); else from the workflow's runs in any mode.
"""

from __future__ import annotations

from easyflow_cli.core.config import Config, CostConfig
from easyflow_cli.core.learned import Expectation, LearnedDurations, expect, learn
from easyflow_cli.core.model import Mode
from easyflow_cli.storage.run_queue import RunQueue


def learned_durations(queue: RunQueue, workflow: str, mode: Mode, config: Config) -> Expectation:
    """The p50 and p90 of a run of `workflow` in `mode`, with their basis and accuracy; under
    `core.learned.MIN_RUNS` runs, the median of those there are, or the default duration."""
    return expectation(queue, workflow, mode, config.costs)


def expectation(queue: RunQueue, workflow: str, mode: Mode, costs: CostConfig) -> Expectation:
    own = queue.recent_successes(workflow, mode)
    learned = learn(own)
    of: str | None = mode.value
    if not learned.enough:
        own, of = queue.recent_successes(workflow), None
        learned = learn(own)
    return expect(learned, own, mode=of, watts_per_core=costs.watts_per_core,
                  default_duration=costs.default_duration)


def learned_by_mode(queue: RunQueue, workflow: str) -> dict[Mode | None, LearnedDurations]:
    """What the workflow's runs teach in any mode (key None), then in each mode it ran in."""
    learned: dict[Mode | None, LearnedDurations] = {None: learn(queue.recent_successes(workflow))}
    for mode in Mode:
        own = learn(queue.recent_successes(workflow, mode))
        if own.runs:
            learned[mode] = own
    return learned
