"""`easyflow run NAME --now`: submit a run; with no daemon up, run it here in the foreground.
Several workflows, or `--count N`, go to the daemon in one go (`bulk`); `--quote` only prices."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

import typer

from easyflow_cli.cli.common import open_store
from easyflow_cli.cli.outcome import report_end
from easyflow_cli.cli.output import print_json, say
from easyflow_cli.core.errors import BadInput, EasyflowError
from easyflow_cli.core.model import Mode, Run
from easyflow_cli.core.paths import state_dir
from easyflow_cli.core.timeutil import utcnow

if TYPE_CHECKING:
    from datetime import datetime

    from easyflow_cli.core.config import Config
    from easyflow_cli.core.costs import Quote
    from easyflow_cli.core.spec import WorkflowSpec
    from easyflow_cli.storage.backend import Backend
    from easyflow_cli.storage.run_queue import HeldByLimit

# More runs than this in one command is a typo, not a plan: each run is a row in memory first.
COUNT_MAX = 1_000_000


def run(
    names: list[str] = typer.Argument(..., metavar="name",
                                      help="The workflow to run (several with --now)."),
    now: bool = typer.Option(False, "--now", help="Run it now (trigger `manual`)."),
    mode: Mode | None = typer.Option(None, "--mode", help="Force an execution mode."),
    deadline: str | None = typer.Option(None, "--deadline",
                                        help="A duration from now (30m) or an ISO-8601 time."),
    as_json: bool = typer.Option(False, "--json", help="Print the run record as JSON."),
    no_wait: bool = typer.Option(False, "--no-wait",
                                 help="With a daemon up: print the run id and return at once."),
    count: int | None = typer.Option(None, "--count", min=1, max=COUNT_MAX,
                                     help="With --now: queue this many runs of each workflow."),
    quote: bool = typer.Option(False, "--quote",
                               help="Don't run: show when it would start and finish, and what "
                                    "it would cost, in each mode."),
    force: bool = typer.Option(False, "--force", help="Run it even if it is disabled."),
) -> None:
    """Run a workflow now. Exit code 0 when it (its last attempt) succeeds, 1 when it fails,
    times out or is cancelled.

    With the daemon up, the run is queued and the daemon runs it; this follows it live, and its
    retries (unless --no-wait; Ctrl-C stops following, exit 130, and the run goes on). With no
    daemon, it runs here in the foreground, its retries too. A daemon that is stopping, or
    does not answer, leaves the run queued for it: its id is printed, and the exit code is 1.

    Several workflows, or --count N runs of each, are queued in one transaction for the daemon,
    which must be up (with none, nothing is queued and the exit code is 2). --no-wait prints
    one run id per line (with --json, a list of records); without it, this waits until every
    run has ended: exit code 0 when all succeeded, else 1.
    """
    if quote:
        if len(names) > 1:
            raise BadInput("--quote takes one workflow")
        show_quote(names[0], as_json)
        return
    if not now:
        if count is not None:
            raise BadInput("--count needs --now")
        raise BadInput("say --now to run the workflow now (or --quote to see what it would cost)")
    if len(names) > 1 or count is not None:
        from easyflow_cli.cli.bulk import submit_runs

        submit_runs(names, count or 1, mode=mode, deadline=deadline, as_json=as_json,
                    no_wait=no_wait, force=force)
        return
    run_one(names[0], mode=mode, deadline=deadline, as_json=as_json, no_wait=no_wait,
            force=force)


def run_one(name: str, *, mode: Mode | None, deadline: str | None, as_json: bool,
            no_wait: bool, force: bool = False, rerun_of: int | None = None) -> None:
    """Queue one run (`rerun_of`: the run it repeats) and wake the daemon; follow the run and
    its retries, or with no daemon run them here."""
    # Imported here: `run --now --no-wait` is on the hot path and `--help` needs none of it.
    from easyflow_cli.cli.submit import (
        daemon_up,
        enqueue_manual_run,
        plan_manual_run,
        print_queued,
        queue_policy,
        refuse_disabled,
    )
    from easyflow_cli.cli.waiting import explain, wait_of
    from easyflow_cli.core.config import load_config

    config = load_config()
    home = state_dir()
    with open_store() as store:
        spec = store.get_workflow(name)
        refuse_disabled(store, [name], force=force)
        # Connected to only once the run is committed: a connection held while waiting for the
        # database lock would hold one of the daemon's descriptors for nothing.
        policy = queue_policy(store, config, daemon_up=daemon_up(store, home))
        planned = plan_manual_run(store, spec, policy, mode=mode, deadline=deadline,
                                  followed=not no_wait, rerun_of=rerun_of,
                                  costs=config.costs)
        queued = enqueue_manual_run(store, spec, planned)
        refused = hand_over(store, home, queued, spec, config, as_json)
        if refused is not None:  # a daemon is up: never run it here behind its back
            print_queued(store.queue.get(queued.id), as_json)
            raise EasyflowError(refused)
        wait = wait_of(store, config, spec, queued)
        if wait is not None:
            explain(wait)
        if spec.max_concurrent is not None:
            for held in store.queue.held_by_limit():
                if held.workflow == name:
                    _say_held(held)
        if no_wait:
            extra = {"max_attempts": spec.retries + 1, "retry_backoff_s": spec.retry_backoff or 0}
            print_queued(store.queue.get(queued.id), as_json,
                         extra | ({"quote": wait.as_json()} if wait else {}))
            return
        ended = follow_here(store, queued.id, as_json)
    report_end(ended, as_json)


def hand_over(store: Backend, home: Path, queued: Run, spec: WorkflowSpec, config: Config,
              as_json: bool) -> str | None:
    """Wake whoever runs the queued run; why it waits in the queue instead (None: taken). With
    no daemon on one box, it runs here, and this exits. A cluster has no "here": its runs go
    to its coordinator, which hears of them as they are committed."""
    from easyflow_cli.cli.submit import not_coordinated, not_taken
    from easyflow_cli.runtime.client import Silence, ask
    from easyflow_cli.runtime.protocol import WakeRequest

    if store.cluster is not None:
        return not_coordinated(store.cluster, f"run {queued.id}")
    reply = ask(WakeRequest(), home)
    if reply is Silence.NOT_RUNNING:
        run_here(store, home, queued, spec, config, as_json)
    return not_taken(reply, f"run {queued.id}")


def follow_here(store: Backend, run_id: int, as_json: bool) -> Run:
    """Follow a run the daemon executes, and its retries, with its output on the terminal."""
    from easyflow_cli.cli.follow import follow_attempts

    echo = sys.stderr.buffer if as_json else sys.stdout.buffer
    return follow_attempts(store, run_id, echo)


def run_here(store: Backend, home: Path, queued: Run, spec: WorkflowSpec, config: Config,
             as_json: bool) -> NoReturn:
    """No daemon answered the wake-up: run the queued run (and its retries) in this process,
    report, exit. A retry a daemon started meanwhile took is followed there."""
    from easyflow_cli.cli.follow import retry_notice
    from easyflow_cli.runtime.foreground import TakenElsewhere, run_in_foreground
    from easyflow_cli.storage.store import Store

    assert isinstance(store, Store)  # one box only: a cluster runs nothing in the foreground

    say_if_root_beside_the_service(home, queued.workflow)
    echo = sys.stderr.buffer if as_json else sys.stdout.buffer
    try:
        ended = run_in_foreground(
            store, home, queued, spec, config, echo,
            on_retry=lambda run, retry: say(retry_notice(run, retry, spec.retries + 1)),
            on_wait=_say_held)
    except TakenElsewhere as taken:
        say(f"{taken}: following it there")
        ended = follow_here(store, taken.run_id, as_json)
    report_end(ended, as_json)


def _say_held(held: HeldByLimit) -> None:
    say(f"waiting: {held.workflow} has {held.running} running (max_concurrent = "
        f"{held.max_concurrent}); this run starts when one ends")


def say_if_root_beside_the_service(home: Path, workflow: str) -> None:
    """Root running a workflow itself, where the system service keeps its own state: say that
    this is root's state and root's rights, and how to run it as the service instead."""
    import os

    from easyflow_cli.core.trust import SERVICE_STATE_DIR, service_user_beside

    user = service_user_beside(os.environ)
    if user:
        say(f"note: running {workflow} as root, from root's own state directory {home}; the "
            f"system service keeps its state in {SERVICE_STATE_DIR} as {user}: to run it there, "
            f"sudo -u {user} EASYFLOW_HOME={SERVICE_STATE_DIR} easyflow run {workflow} --now")


def show_quote(name: str, as_json: bool) -> None:
    """The seed's "Run now: $0.10 · Run overnight: $0.04", and the table behind it."""
    from easyflow_cli.cli.loaded_series import loaded_tariff
    from easyflow_cli.core.config import load_config
    from easyflow_cli.reporting.accounting import workflow_quotes

    config = load_config()
    moment = utcnow()
    with open_store() as store:
        quotes = list(workflow_quotes(store, config, store.get_workflow(name), moment,
                                      tariff=loaded_tariff(config)).values())
    if as_json:
        print_json({"workflow": name, "currency": config.costs.currency,
                    "quotes": [q.as_json() for q in quotes]})
        return
    _print_quote(quotes, config.costs.currency, moment)


def _print_quote(quotes: list[Quote], currency: str, moment: datetime) -> None:
    """The headline and the table, every amount with the same decimals."""
    from rich.table import Table

    from easyflow_cli.cli.money import money_column
    from easyflow_cli.cli.output import console, short_time
    from easyflow_cli.core.timeutil import to_iso

    costs = dict(zip((q.mode for q in quotes),
                     money_column([q.cost for q in quotes], currency)[0], strict=True))
    eco = next(q for q in quotes if q.mode is Mode.ECO)
    later = "overnight" if eco.start > moment else "in eco mode"
    console.print(f"[bold]Run now: {costs[Mode.REAL_TIME]} · Run {later}: {costs[Mode.ECO]}"
                  "[/bold]")
    table = Table(header_style="bold")
    for column in ("mode", "would start", "would finish", "cost", "based on"):
        table.add_column(column, justify="right" if column == "cost" else "left")
    for q in quotes:
        table.add_row(q.mode.value, short_time(to_iso(q.start)), short_time(to_iso(q.finish)),
                      costs[q.mode], q.basis)
    console.print(table)
