"""`easyflow run NAME --now`: submit a run; with no daemon up, run it here in the foreground."""

from __future__ import annotations

import sys

import typer

from easyflow_cli.cli.common import open_store, parse_deadline
from easyflow_cli.cli.follow import follow_run
from easyflow_cli.cli.output import err_console, print_json
from easyflow_cli.client import wake
from easyflow_cli.config import load_config
from easyflow_cli.errors import BadInput
from easyflow_cli.model import Mode, RunState, Trigger
from easyflow_cli.paths import state_dir
from easyflow_cli.queue import QueuePolicy, enqueue_run, plan_run, typical_duration
from easyflow_cli.timeutil import utcnow


def run(
    name: str = typer.Argument(..., help="The workflow to run."),
    now: bool = typer.Option(False, "--now", help="Run it now (trigger `manual`)."),
    mode: Mode = typer.Option(None, "--mode", help="Force an execution mode."),
    deadline: str = typer.Option(None, "--deadline",
                                 help="A duration from now (30m) or an ISO-8601 time."),
    as_json: bool = typer.Option(False, "--json", help="Print the run record as JSON."),
    no_wait: bool = typer.Option(False, "--no-wait",
                                 help="With a daemon up: print the run id and return at once."),
) -> None:
    """Run a workflow now. Exit code 0 when it succeeds, 1 when it fails.

    With the daemon up, the run is queued and the daemon runs it; this follows it live (unless
    --no-wait). With no daemon, it runs here in the foreground.
    """
    if not now:
        raise BadInput("say --now to run the workflow now")
    config = load_config()
    home = state_dir()
    with open_store() as store:
        spec = store.get_workflow(name)
        moment = utcnow()
        row = plan_run(
            spec, trigger=Trigger.MANUAL, now=moment,
            policy=QueuePolicy(config.promote_within, config.off_peak), override=mode,
            deadline=parse_deadline(deadline, moment) if deadline else None,
            typical_duration=typical_duration(store, name),
        )
        record = enqueue_run(store, row)
        err_console.print(f"run {record['id']}: {name} in {record['mode']} mode "
                          f"({record['mode_reason']})", highlight=False)
        echo = sys.stderr.buffer if as_json else sys.stdout.buffer
        if wake(home):
            if no_wait:
                _print_queued(record, as_json)
                return
            record = follow_run(store, record["id"], echo)
        else:
            from easyflow_cli.foreground import run_in_foreground

            record = run_in_foreground(store, home, record, spec, config, echo)
    _report(record, as_json)


def _print_queued(record: dict, as_json: bool) -> None:
    if as_json:
        print_json(record)
    else:
        typer.echo(record["id"])


def _report(record: dict, as_json: bool) -> None:
    if as_json:
        print_json(record)
    state = RunState(record["state"])
    style = "green" if state is RunState.SUCCEEDED else "red"
    err_console.print(f"run {record['id']} [{style}]{state.value}[/{style}] in "
                      f"{record['duration_s'] or 0:.2f}s"
                      + (f": {record['error']}" if record["error"] else ""), highlight=False)
    raise typer.Exit(0 if state is RunState.SUCCEEDED else 1)
