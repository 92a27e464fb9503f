"""Queueing manual runs for `run --now`: planned first (nothing written), then committed.

No Rich here: `run --now --no-wait` needs none of it.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from easyflow_cli.cli.common import parse_deadline
from easyflow_cli.cli.output import print_json, print_line, say
from easyflow_cli.core.eco_plan import RunEstimate, batch_estimate
from easyflow_cli.core.errors import BadInput
from easyflow_cli.core.model import Mode, Run, Trigger
from easyflow_cli.core.planning import PlannedRun, QueuePolicy, plan_run
from easyflow_cli.core.timeutil import utcnow
from easyflow_cli.runtime.client import Silence

if TYPE_CHECKING:
    from pathlib import Path

    from easyflow_cli.core.config import Config, CostConfig
    from easyflow_cli.core.spec import WorkflowSpec
    from easyflow_cli.storage.backend import Backend, Cluster


def queue_policy(store: Backend, config: Config, daemon_up: bool) -> QueuePolicy:
    """What new runs are planned by: the policy of the daemon that will run them, when it is up
    and has published one; else this process's config."""
    from easyflow_cli.core.plan_series import config_policy

    published = store.published_policy(config) if daemon_up else None
    return published or config_policy(config)


def daemon_up(store: Backend, home: Path) -> bool:
    """Whether a daemon takes the runs queued now: one answering on this machine's socket, or
    on a cluster a coordinator holding its lock."""
    if store.cluster is not None:
        return store.cluster.coordinator() is not None
    from easyflow_cli.runtime.client import listening

    return listening(home)


def not_coordinated(cluster: Cluster, which: str) -> str | None:
    """On a cluster the coordinator hears of runs as they are committed (`LISTEN/NOTIFY`): why
    they wait when no coordinator runs; None when one does."""
    if cluster.coordinator() is not None:
        return None
    wait = "waits" if which.startswith("run ") else "wait"
    return (f"no coordinator is running: {which} {wait} in the queue until one starts "
            "(`easyflow status` shows the cluster)")


def refuse_disabled(store: Backend, names: Sequence[str], *, force: bool) -> None:
    """A disabled workflow is run only with --force (exit 2, nothing queued)."""
    if force:
        return
    for name in names:
        if store.workflow_disabled(name):
            raise BadInput(f"workflow {name!r} is disabled: `easyflow workflow enable {name}` "
                           "lets it run again, or add --force to run it once anyway")


def plan_manual_run(store: Backend, spec: WorkflowSpec, policy: QueuePolicy, *,
                    mode: Mode | None, deadline: str | None, followed: bool,
                    now: datetime | None = None, rerun_of: int | None = None, batch: int = 1,
                    costs: CostConfig | None = None) -> PlannedRun:
    """The run a user asked for now (`rerun_of`: the run it repeats; `followed`: the user waits
    for it, rather than `--no-wait`; `batch`: how many alike are asked for at once, planned as
    one batch), planned (nothing is written); `costs`: what its learned energy estimate
    assumes."""
    from easyflow_cli.core.config import CostConfig
    from easyflow_cli.storage.learned_durations import expectation

    moment = now or utcnow()
    assumed = costs or CostConfig()
    planned = plan_run(
        spec, trigger=Trigger.MANUAL, now=moment, policy=policy, override=mode,
        deadline=parse_deadline(deadline, moment) if deadline is not None else None,
        expected=lambda m: expectation(store.queue, spec.name, m, assumed), rerun_of=rerun_of,
        estimate=batch_run_estimate(store, spec.name, policy, batch),
    )
    planned.followed = followed
    return planned


def batch_run_estimate(store: Backend, workflow: str, policy: QueuePolicy,
                       batch: int) -> RunEstimate | None:
    """What the eco planner expects of `batch` runs of `workflow` run by the eco pool."""
    from easyflow_cli.storage.plan_estimate import eco_estimate

    each = eco_estimate(store.queue, workflow, policy)
    if each is None or batch == 1:
        return each
    return batch_estimate(each, batch, policy.series.eco_workers if policy.series else 1)


def plan_manual_runs(store: Backend, specs: Sequence[WorkflowSpec], count: int,
                     policy: QueuePolicy, *, mode: Mode | None, deadline: str | None,
                     followed: bool, costs: CostConfig | None = None) -> list[PlannedRun]:
    """`count` runs of each workflow, in order. Runs of one workflow asked for at the same
    moment are planned alike, so each workflow is planned once."""
    moment = utcnow()
    planned = []
    for spec in specs:
        run = plan_manual_run(store, spec, policy, mode=mode, deadline=deadline,
                              followed=followed, now=moment, batch=count, costs=costs)
        planned.extend([run] * count)
    return planned


def enqueue_manual_run(store: Backend, spec: WorkflowSpec, planned: PlannedRun) -> Run:
    """Commit the planned run and say so on stderr (with what it repeats, and the retries that
    may follow it); the stored run."""
    run = store.queue.get(store.queue.enqueue([planned])[0])
    rerun = f", re-running run {run.rerun_of}" if run.rerun_of is not None else ""
    retries = (f"; if it fails, up to {spec.retries} "
               f"{'retry follows' if spec.retries == 1 else 'retries follow'}"
               if spec.retries else "")
    say(f"run {run.id}: {spec.name} in {run.mode.value} mode ({run.mode_reason.value})"
        f"{rerun}{retries}")
    return run


def print_queued(run: Run, as_json: bool, extra: dict[str, Any] | None = None) -> None:
    """What `--no-wait` prints: the run id, or with `--json` the queued record (and `extra`)."""
    if as_json:
        print_json(run.to_record() | (extra or {}))
    else:
        print_line(run.id)


def not_taken(reply: dict[str, Any] | Silence, which: str) -> str | None:
    """Why the daemon did not take the runs it was woken for (`which`: "run 5", "runs 5-7"),
    and what becomes of them; None when it took them."""
    wait = "waits" if which.startswith("run ") else "wait"
    if reply is Silence.NOT_RUNNING:
        return f"the daemon did not answer: {which} {wait} in the queue until it starts"
    if reply is Silence.NOT_ANSWERING:
        return (f"the daemon is not answering: {which} {wait} in the queue until it takes "
                "them (`easyflow status` says when it answers again)")
    if isinstance(reply, dict) and reply.get("stopping"):
        why = reply.get("error") or "the daemon is stopping"
        return f"{why}: {which} {wait} in the queue until it starts again"
    return None
