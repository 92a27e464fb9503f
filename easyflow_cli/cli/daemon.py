"""`easyflow daemon` (what systemd starts) and `easyflow status`."""

from __future__ import annotations

import sys
from datetime import datetime
from pathlib import Path

import typer

from easyflow_cli.cli.common import open_store
from easyflow_cli.cli.output import (
    CSV_OPTION,
    JSON_OPTION,
    console,
    print_csv,
    print_json,
    render_rows,
    short_time,
)
from easyflow_cli.core.paths import state_dir
from easyflow_cli.core.timeutil import from_iso, utcnow


def daemon(
    config: Path | None = typer.Option(
        None, "--config", "-c",
        help="Config file (else $EASYFLOW_CONFIG, $EASYFLOW_HOME/easyflow.toml, "
             "/etc/easyflow/easyflow.toml)."),
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Log debug details."),
) -> None:
    """Run the scheduler daemon in the foreground (systemd's Type=notify service)."""
    import logging

    from easyflow_cli.runtime.daemon import Daemon
    from easyflow_cli.runtime.sdnotify import JournalFormatter

    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JournalFormatter())
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO, handlers=[handler])
    raise typer.Exit(Daemon(state_dir(), str(config) if config else None).run())


# `status` exit codes: the daemon answered; nothing listens; something listens but gave no
# answer in time (stopped, hung, or swamped).
RUNNING, NOT_RUNNING, NOT_ANSWERING = 0, 1, 3


def status(as_json: bool = JSON_OPTION, as_csv: bool = CSV_OPTION) -> None:
    """Is the daemon up? Its pools, queue depths, next schedule fires and the runs running now.

    Exit code 0 when it answers, 1 when it is not running, 3 when it runs but does not answer.
    `--csv` prints the runs running now.
    """
    from easyflow_cli.runtime.client import Silence, ask
    from easyflow_cli.runtime.protocol import StatusRequest

    live = ask(StatusRequest())
    code = RUNNING
    if isinstance(live, Silence):
        code = NOT_ANSWERING if live is Silence.NOT_ANSWERING else NOT_RUNNING
        live = _status_without_daemon(code)
    live["held_by_limit"] = _held_by_limit()
    if as_json:
        print_json(live)
    elif as_csv:
        from easyflow_cli.reporting.running import RUNNING_COLUMNS

        print_csv(live.get("running", []), RUNNING_COLUMNS)
    else:
        _print_status(live)
    raise typer.Exit(code)


def _status_without_daemon(code: int) -> dict:
    """What the database alone tells: the queue, the next fires, and the runs running now
    (in a terminal, or left by a daemon that stopped answering)."""
    from easyflow_cli.reporting.running import running_now

    with open_store() as store:
        return {"pid": None, "since": None,
                "state": "not answering" if code == NOT_ANSWERING else "stopped",
                "home": str(state_dir()), "pools": None, "queue": store.queue.depths(),
                "next_fires": store.upcoming_schedules(5),
                "running": running_now(store.queue, utcnow())}


def _held_by_limit() -> list[dict]:
    """Workflows whose queued runs wait for their max_concurrent (read here: the database
    says it whether the daemon answers or not)."""
    from dataclasses import asdict

    with open_store() as store:
        return [asdict(held) for held in store.queue.held_by_limit()]


def _print_status(live: dict) -> None:
    if live["pid"]:
        console.print(f"daemon [green]running[/] (pid {live['pid']}, since "
                      f"{short_time(live['since'])}, {live['state']}), state in {live['home']}")
        for mode, pool in live["pools"].items():
            bar = "█" * pool["busy"] + "·" * (pool["size"] - pool["busy"])
            console.print(f"  pool {mode:10} {bar:12} {pool['busy']}/{pool['size']} busy")
    elif live["state"] == "not answering":
        console.print(f"daemon [yellow]not answering[/] (it holds its socket but gave no answer; "
                      f"state in {live['home']})")
    else:
        console.print(f"daemon [red]not running[/] (state in {live['home']})")
    queued = ", ".join(f"{mode} {n}" for mode, n in live["queue"].items())
    console.print(f"  queued: {queued}")
    for held in live["held_by_limit"]:
        console.print(f"  waiting for max_concurrent: {held['workflow']} "
                      f"{held['queued']} queued, {held['running']} running "
                      f"(max_concurrent = {held['max_concurrent']})", highlight=False)
    now = utcnow()
    for fire in live["next_fires"]:
        console.print(f"  next: {_next_fire(fire['next_fire_at'], now)}  schedule {fire['id']} "
                      f"({fire['workflow']})", highlight=False)
    _print_running(live.get("running", []))  # a daemon started before the upgrade has none


def _print_running(running: list[dict]) -> None:
    if not running:
        console.print("  running: none")
        return
    rows = [{**run, "elapsed": _elapsed(run["elapsed_s"])} for run in running]
    render_rows(rows, ["id", "workflow", "mode", "pool", "elapsed"], as_json=False,
                as_csv=False, title="running now")


def _elapsed(value: float | None) -> str:
    from easyflow_cli.cli.output import seconds
    from easyflow_cli.core.durations import format_duration

    if value is None or value < 60:
        return seconds(value)
    return format_duration(round(value))


def _next_fire(at: str, now: datetime) -> str:
    """When a schedule fires next; a time already past (the daemon is down, or busy catching
    up) is said to be overdue, with what happens to it."""
    if from_iso(at) > now:
        return short_time(at)
    return f"overdue since {short_time(at)} (fires once, when the daemon starts)"
