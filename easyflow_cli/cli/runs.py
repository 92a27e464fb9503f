"""`easyflow runs ...` and `easyflow logs`: what ran, how it went, what it printed."""

from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

import typer

from easyflow_cli.cli.common import check_workflow, open_store
from easyflow_cli.cli.group import EasyflowGroup
from easyflow_cli.cli.output import (
    CSV_OPTION,
    JSON_OPTION,
    console,
    err_console,
    plain,
    print_csv,
    print_json,
    render_rows,
    say,
    seconds,
    short_time,
)
from easyflow_cli.core.errors import BadInput
from easyflow_cli.core.model import Mode, Run, RunState
from easyflow_cli.core.timeutil import to_iso
from easyflow_cli.core.words import plural

if TYPE_CHECKING:
    from easyflow_cli.storage.backend import Cluster

app = typer.Typer(cls=EasyflowGroup, no_args_is_help=True, rich_markup_mode=None,
                  help="List and inspect runs.")

LIMIT_MAX = 1_000_000
LIST_COLUMNS = ["id", "workflow", "trigger", "mode", "mode_reason", "state", "enqueued_at",
                "duration_s", "exit_code"]
# Fields whose name says less to people than another word does.
SHOWN_AS = {"not_before_reason": "planned"}
TIME_FIELDS = {"deadline", "enqueued_at", "not_before", "promote_at", "claimed_at", "started_at",
               "finished_at"}
# Keyed by the enum, looked up by the record's text: a StrEnum member equals its value.
STATE_STYLE = {RunState.SUCCEEDED: "green", RunState.FAILED: "red", RunState.TIMED_OUT: "red",
               RunState.CANCELLED: "yellow", RunState.RUNNING: "cyan", RunState.QUEUED: "blue"}


@app.command("list")
def list_(
    workflow: str | None = typer.Option(None, "--workflow", "-w", help="Only this workflow."),
    state: RunState | None = typer.Option(None, "--state", help="Only runs in this state."),
    limit: int = typer.Option(50, "--limit", "-n", min=1, max=LIMIT_MAX,
                              help="At most this many, newest first."),
    as_json: bool = JSON_OPTION,
    as_csv: bool = CSV_OPTION,
) -> None:
    """List runs, newest first."""
    with open_store() as store:
        check_workflow(store, workflow)
        rows = [run.to_record()
                for run in store.queue.latest(workflow=workflow, state=state, limit=limit)]
    render_rows(rows, LIST_COLUMNS, as_json=as_json, as_csv=as_csv, empty="no runs",
                formatters={"enqueued_at": short_time, "duration_s": seconds,
                            "state": lambda s: f"[{STATE_STYLE.get(s, '')}]{s}[/]"})


@app.command("show")
def show(run_id: int, as_json: bool = JSON_OPTION) -> None:
    """Show everything recorded about one run, and the attempts it is one of."""
    from easyflow_cli.core.config import load_config
    from easyflow_cli.reporting.receipts import run_receipt
    from easyflow_cli.storage.run_queue import attempt_chain

    config = load_config()
    with open_store() as store:
        run = store.queue.get(run_id)
        receipt = run_receipt(store, run, config)
        chain = attempt_chain(store.queue, run_id)
    record = run.to_record()
    attempts = [attempt_summary(run) for run in chain]
    if as_json:
        print_json(record | {"receipt": receipt and receipt.as_json(), "attempts": attempts})
        return
    from rich.table import Table

    from easyflow_cli.cli.receipt import receipt_line

    table = Table(show_header=False, box=None)
    for key, value in record.items():
        table.add_row(f"[bold]{SHOWN_AS.get(key, key)}[/]", _shown(key, value))
    if receipt is not None:
        table.add_row("[bold]receipt[/]", receipt_line(receipt, config.costs.currency))
    if len(chain) > 1:
        table.add_row("[bold]attempts[/]", attempts_line(attempts, run_id))
    console.print(table)


def attempt_summary(run: Run) -> dict[str, object]:
    """One attempt of a run, as `runs show --json` lists them under `attempts`."""
    return {"id": run.id, "attempt": run.attempt, "state": run.state.value,
            "exit_code": run.exit_code, "finished_at": to_iso(run.finished_at)}


def attempts_line(attempts: list[dict[str, object]], current: int) -> str:
    """`run 10 failed (exit 3) → [bold]run 11 succeeded[/]`, the shown run in bold."""
    def one(attempt: dict[str, object]) -> str:
        code = attempt["exit_code"]
        text = f"run {attempt['id']} {attempt['state']}" + (
            f" (exit {code})" if code not in (None, 0) else "")
        return f"[bold]{text}[/]" if attempt["id"] == current else text
    return " → ".join(map(one, attempts))


def _shown(field: str, value: object) -> str:
    """A field of a run for people: its times in local time with the zone."""
    if isinstance(value, str) and field in TIME_FIELDS:
        return short_time(value)
    return plain(value)


@app.command("cancel")
def cancel(run_id: int) -> None:
    """Cancel a queued run, or stop a running one (its steps get SIGTERM, then SIGKILL)."""
    from easyflow_cli.cli.common import configured_cluster
    from easyflow_cli.runtime.client import cancel as cancel_by_daemon

    reply: dict | None = None
    if configured_cluster() is not None:
        reply = _cancel_on_cluster(run_id)
    elif (reply := cancel_by_daemon(run_id)) is None:
        reply = _cancel_without_daemon(run_id)
    if not reply.get("ok"):
        raise BadInput(reply.get("error", f"cannot cancel run {run_id}"))
    err_console.print(f"run {run_id}: {reply['state']}")


def _cancel_without_daemon(run_id: int) -> dict:
    import signal

    from easyflow_cli.core.model import PoolName
    from easyflow_cli.core.timeutil import utcnow
    from easyflow_cli.storage.run_queue import cancel_run

    with open_store() as store:
        run = store.queue.get(run_id)
        if run.state is RunState.RUNNING and run.pool is PoolName.FOREGROUND and run.pid:
            # The foreground runner stops its steps on SIGTERM and records `cancelled`.
            os.kill(run.pid, signal.SIGTERM)
            return {"ok": True, "state": "stopping"}
        return {"ok": True, "state": cancel_run(store.queue, run_id, now=utcnow()).state.value}


def _cancel_on_cluster(run_id: int) -> dict:
    """A queued run, or one dispatched that no worker accepted yet, is cancelled in the
    database; a running one's worker is asked to stop it (it records `cancelled` once its
    steps are stopped)."""
    from easyflow_cli.core.timeutil import utcnow
    from easyflow_cli.storage.run_queue import cancel_run

    with open_store() as store:
        assert store.cluster is not None  # opened by the configuration that named a cluster
        run = cancel_run(store.queue, run_id, now=utcnow())  # refused once it ended
        if run.state is RunState.RUNNING and store.cluster.request_cancel([run_id],
                                                                          now=utcnow()):
            return {"ok": True, "state": "stopping"}
        return {"ok": True, "state": store.queue.get(run_id).state.value}


@app.command("retry")
def retry(
    run_id: int = typer.Argument(..., help="The finished run to run again."),
    mode: Mode | None = typer.Option(None, "--mode", help="Force an execution mode."),
    as_json: bool = typer.Option(False, "--json", help="Print the new run's record as JSON."),
    no_wait: bool = typer.Option(False, "--no-wait",
                                 help="With a daemon up: print the new run's id and return."),
) -> None:
    """Run a finished run's workflow again (trigger `manual`, `rerun_of` the run it repeats).

    Waits and follows it like `run --now` (its retries too), with the same exit code: 0 when
    it succeeds, 1 when it fails, times out or is cancelled. With no daemon, it runs here."""
    from easyflow_cli.cli.run import run_one

    with open_store() as store:
        run = store.queue.get(run_id)
    if not run.state.finished:
        raise BadInput(f"run {run_id} has not ended ({run.state.value}): wait for it, or "
                       f"cancel it first (`easyflow runs cancel {run_id}`)")
    run_one(run.workflow, mode=mode, deadline=None, as_json=as_json, no_wait=no_wait,
            rerun_of=run_id)


def logs(
    run_id: int = typer.Argument(..., help="The run whose output to print."),
    raw: bool = typer.Option(False, "--raw",
                             help="The bytes as the steps wrote them, escape sequences included "
                                  "(else control characters are shown as \\x1b)."),
    follow: bool = typer.Option(False, "--follow", "-f",
                                help="Follow the log as it grows until the run ends, then exit "
                                     "as `run --now` does (0 when it succeeded, else 1)."),
    tail: int | None = typer.Option(None, "--tail", "-n", min=0, max=LIMIT_MAX,
                                    help="Only the last N lines (with -f: then what follows)."),
) -> None:
    """Print the output a run's steps wrote (kept under the state directory)."""
    from easyflow_cli.cli.log_view import copy_log

    if follow:
        follow_log(run_id, raw=raw, lines=tail)
    with open_store() as store:
        run = store.queue.get(run_id)
        if store.cluster is not None:
            print_chunks(store.cluster, run, raw=raw, lines=tail)
            return
    if not run.log_path:
        raise BadInput(f"run {run_id} has no log yet (state {run.state.value})")
    if not os.path.lexists(run.log_path):
        return  # started, and printed nothing yet: its log file comes with its first output
    copy_log(Path(run.log_path), typer.get_binary_stream("stdout"), raw=raw, lines=tail)


def print_chunks(cluster: Cluster, run: Run, *, raw: bool, lines: int | None) -> None:
    """A run's log on a cluster: the chunks its worker wrote to the database."""
    from easyflow_cli.cli.log_view import write_chunks
    from easyflow_cli.cli.run_output import tail_of

    data = b"".join(chunk for _, chunk in cluster.log_chunks(run.id))
    if not data and run.started_at is None and not run.state.finished:
        raise BadInput(f"run {run.id} has no log yet (state {run.state.value})")
    if lines is not None:
        data = tail_of(data, lines)
    write_chunks(iter([data]), typer.get_binary_stream("stdout"), raw=raw)


def follow_log(run_id: int, *, raw: bool, lines: int | None) -> NoReturn:
    """`logs -f`: the log until the run ends, a line saying how it ended, its exit code. The
    retry a failed run got is named, to follow next."""
    from easyflow_cli.cli.log_follow import log_follower
    from easyflow_cli.cli.log_view import write_chunks
    from easyflow_cli.cli.outcome import ended_line, exit_code_of, stop_following

    with open_store() as store:
        follower = log_follower(store, run_id, lines)
        try:
            write_chunks(follower.chunks(), typer.get_binary_stream("stdout"), raw=raw)
        except KeyboardInterrupt:
            stop_following(run_id)
        ended = follower.run
        retry = store.queue.retried_as(run_id)
    err_console.print(ended_line(ended), highlight=False)
    if retry is not None:
        say(f"run {run_id} is retried as run {retry.id}: easyflow logs -f {retry.id}")
    raise typer.Exit(exit_code_of(ended))


@app.command("prune")
def prune(
    older_than: str = typer.Option(..., "--older-than",
                                   help="Runs that finished longer ago than this (90d)."),
    workflow: str | None = typer.Option(None, "--workflow", "-w", help="Only this workflow."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Say what would go; remove nothing."),
    as_json: bool = JSON_OPTION,
    as_csv: bool = CSV_OPTION,
) -> None:
    """Remove finished runs and their logs, rolled up first: reports still count them."""
    from easyflow_cli.core.durations import parse_duration
    from easyflow_cli.core.paths import state_dir
    from easyflow_cli.core.timeutil import local_zone, utcnow
    from easyflow_cli.runtime.retention import prune_older_than

    try:
        age = parse_duration(older_than)
    except ValueError as exc:
        raise BadInput(f"--older-than: {exc}") from None
    cutoff = utcnow() - timedelta(seconds=age)
    with open_store() as store:
        check_workflow(store, workflow)
        removed = prune_older_than(store, cutoff, workflow=workflow, zone=local_zone(),
                                   home=state_dir(), dry_run=dry_run)
    document = {**removed.as_json(), "dry_run": dry_run, "finished_before": to_iso(cutoff)}
    if as_json:
        print_json(document)
        return
    if as_csv:
        print_csv([document], list(document))
        return
    verb = "would remove" if dry_run else "removed"
    files = plural(removed.log_files, "log file")
    console.print(f"{verb} {plural(removed.runs, 'run')} and {files}"
                  f" ({removed.log_bytes:,} bytes), finished before {short_time(to_iso(cutoff))}")
