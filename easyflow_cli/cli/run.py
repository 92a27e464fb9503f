"""`easyflow run NAME --now`: submit a run; with no daemon up, run it here in the foreground."""

from __future__ import annotations

import sys

import typer

from easyflow_cli.cli.common import open_store, parse_deadline
from easyflow_cli.cli.output import err_console, print_json, say
from easyflow_cli.errors import BadInput
from easyflow_cli.model import Mode, RunState, Trigger
from easyflow_cli.paths import state_dir
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
    quote: bool = typer.Option(False, "--quote",
                               help="Don't run: show when it would start and finish, and what "
                                    "it would cost, in each mode."),
) -> None:
    """Run a workflow now. Exit code 0 when it succeeds, 1 when it fails.

    With the daemon up, the run is queued and the daemon runs it; this follows it live (unless
    --no-wait). With no daemon, it runs here in the foreground.
    """
    if quote:
        show_quote(name, as_json)
        return
    if not now:
        raise BadInput("say --now to run the workflow now (or --quote to see what it would cost)")
    # Imported here: `run --now --no-wait` is on the hot path and `--help` needs none of it.
    from easyflow_cli.client import wake
    from easyflow_cli.config import load_config
    from easyflow_cli.queue import QueuePolicy, enqueue_run, get_run, plan_run, typical_duration

    config = load_config()
    home = state_dir()
    with open_store() as store:
        spec = store.get_workflow(name)
        moment = utcnow()
        row = plan_run(
            spec, trigger=Trigger.MANUAL, now=moment,
            policy=QueuePolicy(config.promote_within, config.off_peak), override=mode,
            deadline=parse_deadline(deadline, moment) if deadline is not None else None,
            typical_duration=typical_duration(store, name),
        )
        record = enqueue_run(store, row)
        say(f"run {record['id']}: {name} in {record['mode']} mode ({record['mode_reason']})")
        echo = sys.stderr.buffer if as_json else sys.stdout.buffer
        if wake(home, [record["id"]]):
            if no_wait:
                _print_queued(get_run(store, record["id"]), as_json)
                return
            from easyflow_cli.cli.follow import follow_run

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


def show_quote(name: str, as_json: bool) -> None:
    """The seed's "Run now: $0.10 · Run overnight: $0.04", and the table behind it."""
    from easyflow_cli.accounting import workflow_history
    from easyflow_cli.config import load_config
    from easyflow_cli.costs import quote
    from easyflow_cli.reports import money

    config = load_config()
    moment = utcnow()
    with open_store() as store:
        store.get_workflow(name)
        history, counts = workflow_history(store, name)
    quotes = [quote(config, mode, moment, history, counts) for mode in Mode]
    if as_json:
        print_json({"workflow": name, "currency": config.costs.currency,
                    "quotes": [q.as_json() for q in quotes]})
        return
    by_mode = {q.mode: q for q in quotes}
    currency = config.costs.currency
    from rich.table import Table

    from easyflow_cli.cli.output import console, short_time
    from easyflow_cli.timeutil import to_iso

    eco = by_mode[Mode.ECO]
    later = "overnight" if eco.start > moment else "in eco mode"
    console.print(f"[bold]Run now: {money(by_mode[Mode.REAL_TIME].cost, currency)} · "
                  f"Run {later}: {money(eco.cost, currency)}[/bold]")
    table = Table(header_style="bold")
    for column in ("mode", "would start", "would finish", "cost", "based on"):
        table.add_column(column)
    for q in quotes:
        table.add_row(q.mode.value, short_time(to_iso(q.start)), short_time(to_iso(q.finish)),
                      money(q.cost, currency), q.basis)
    console.print(table)
