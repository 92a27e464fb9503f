"""Several runs at once, for scripts: `run A B C --now [--count N]`.

Every run is planned before anything is written, committed in one transaction, and the daemon is
woken once. Several runs are the daemon's work: its pools, priorities and off-peak hours decide
how they run. With no daemon up they are refused (exit 2, nothing written) rather than run one
after another here, where none of that would hold.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import replace
from typing import TYPE_CHECKING

import typer

from easyflow_cli.cli.common import open_store
from easyflow_cli.cli.output import print_json, print_line, say
from easyflow_cli.cli.submit import (
    daemon_up,
    not_coordinated,
    not_taken,
    plan_manual_runs,
    queue_policy,
    refuse_disabled,
)
from easyflow_cli.core.errors import BadInput, EasyflowError
from easyflow_cli.core.model import RunState
from easyflow_cli.core.planning import RETRIED_STATES

if TYPE_CHECKING:
    from pathlib import Path

    from easyflow_cli.cli.waiting import Wait
    from easyflow_cli.core.config import Config
    from easyflow_cli.core.model import Mode, Run
    from easyflow_cli.core.planning import PlannedRun
    from easyflow_cli.core.spec import WorkflowSpec
    from easyflow_cli.storage.backend import Backend

POLL_SECONDS = 0.2
NO_DAEMON = ("several runs go to the daemon, and none is running: start it with `easyflow "
             "daemon`, or run one workflow at a time to run it here")


def submit_runs(names: Sequence[str], count: int, *, mode: Mode | None, deadline: str | None,
                as_json: bool, no_wait: bool, force: bool = False) -> None:
    """Queue `count` runs of each workflow, wake the daemon, print the ids (or records); unless
    `no_wait`, wait for every run to end. Exits 1 when one did not succeed."""
    from easyflow_cli.core.config import load_config
    from easyflow_cli.core.paths import state_dir

    config = load_config()
    home = state_dir()
    with open_store() as store:
        specs = [store.get_workflow(name) for name in names]
        refuse_disabled(store, names, force=force)
        up = daemon_up(store, home)
        # With no daemon up on one box, nothing is planned or written; a cluster's runs wait
        # in its queue for a coordinator, as they would for any of its workers.
        if not up and store.cluster is None:
            raise BadInput(NO_DAEMON)
        policy = queue_policy(store, config, daemon_up=up)
        planned = plan_manual_runs(store, specs, count, policy, mode=mode, deadline=deadline,
                                   followed=not no_wait, costs=config.costs)
        ids, refused = queue_and_wake(store, home, planned, count)
        if refused is not None:
            print_ids(store, ids, as_json)
            raise EasyflowError(refused)
        waits = explain_waits(store, config, specs, ids, count)
        if no_wait:
            print_ids(store, ids, as_json, waits)
            return
        wait_for_runs(store, ids, as_json)


def explain_waits(store: Backend, config: Config, specs: Sequence[WorkflowSpec], ids: range,
                  count: int) -> dict[int, Wait]:
    """Say, for each workflow whose runs wait for off-peak hours, when they start and what one
    costs then and in real-time now (runs of a workflow queued together are planned alike);
    each waiting run's id with its wait."""
    from easyflow_cli.cli.waiting import explain, wait_of

    waits: dict[int, Wait] = {}
    for index, spec in enumerate(specs):
        group = ids[index * count:(index + 1) * count]
        wait = wait_of(store, config, spec, store.queue.get(group[0]))
        if wait is not None:
            explain(replace(wait, last_id=group[-1]))
            waits.update(dict.fromkeys(group, wait))
    return waits


def queue_and_wake(store: Backend, home: Path, planned: Sequence[PlannedRun], count: int
                   ) -> tuple[range, str | None]:
    """Commit the runs in one transaction, then wake the daemon once; their ids, and why they
    wait in the queue (None: taken). The daemon is connected to only once the runs are
    committed: a connection held while waiting for the database lock would hold one of its
    descriptors for nothing. A cluster's coordinator hears of them as they are committed."""
    from easyflow_cli.runtime.client import ask
    from easyflow_cli.runtime.protocol import WakeRequest

    ids = store.queue.enqueue(planned)
    say_queued(ids, planned, count)
    which = f"runs {ids.start}-{ids.stop - 1}"
    if store.cluster is not None:
        return ids, not_coordinated(store.cluster, which)
    return ids, not_taken(ask(WakeRequest(), home), which)


def say_queued(ids: range, planned: Sequence[PlannedRun], count: int) -> None:
    """One line on stderr per workflow: its runs' ids, mode and why."""
    for first in range(0, len(planned), count):
        run, start = planned[first], ids[first]
        which = f"run {start}" if count == 1 else f"runs {start}-{start + count - 1}"
        say(f"{which}: {run.workflow} in {run.mode.value} mode ({run.mode_reason.value})")


def print_ids(store: Backend, ids: range, as_json: bool, waits: dict[int, Wait] | None = None
              ) -> None:
    """One id per line, or with `--json` the list of records (a waiting run's with its
    quote)."""
    if as_json:
        waits = waits or {}
        print_json([run.to_record() | ({"quote": waits[run.id].as_json()} if run.id in waits
                                       else {}) for run in stored_runs(store, ids)])
        return
    for run_id in ids:
        print_line(run_id)


def last_attempt(store: Backend, run: Run) -> Run:
    """The run's last attempt, once it ended: a failed run's retries are waited for."""
    while run.state in RETRIED_STATES and (retry := store.queue.retried_as(run.id)):
        while not retry.state.finished:
            time.sleep(POLL_SECONDS)
            retry = store.queue.get(retry.id)
        run = retry
    return run


def stored_runs(store: Backend, ids: range) -> list[Run]:
    return [store.queue.get(run_id) for run_id in ids]


def wait_for_runs(store: Backend, ids: range, as_json: bool) -> None:
    """Wait for every run to end, and a failed one's retries; one line each on stderr (its
    last attempt), their records with `--json`."""
    while store.queue.unfinished_count(ids):
        time.sleep(POLL_SECONDS)
    ended = [last_attempt(store, run) for run in stored_runs(store, ids)]
    if as_json:
        print_json([run.to_record() for run in ended])
    for run in ended:
        attempt = f" (attempt {run.attempt})" if run.attempt > 1 else ""
        say(f"run {run.id}{attempt} {run.state.value} in {run.duration_s or 0:.2f}s"
            + (f": {run.error}" if run.error else ""))
    if any(run.state is not RunState.SUCCEEDED for run in ended):
        raise typer.Exit(1)
