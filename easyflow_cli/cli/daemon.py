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
    zone_time,
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
    """Run the scheduler daemon in the foreground (systemd's Type=notify service); with a
    [cluster], the coordinator of its workers (docs/cluster.md)."""
    import logging

    from easyflow_cli.core.config import load_config
    from easyflow_cli.runtime.sdnotify import JournalFormatter

    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JournalFormatter())
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO, handlers=[handler])
    path = str(config) if config else None
    if load_config(path).cluster is not None:
        from easyflow_cli.runtime.cluster.coordinator import Coordinator

        raise typer.Exit(Coordinator(path).run())
    from easyflow_cli.runtime.daemon import Daemon

    raise typer.Exit(Daemon(state_dir(), path).run())


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
                "running": running_now(store.queue, utcnow()), "fault": None}


def _held_by_limit() -> list[dict]:
    """Workflows whose queued runs wait for their max_concurrent (read here: the database
    says it whether the daemon answers or not)."""
    from dataclasses import asdict

    from easyflow_cli.storage.live_files import StorageFault

    try:
        with open_store() as store:
            return [asdict(held) for held in store.queue.held_by_limit()]
    except StorageFault:  # the daemon's own answer says what happened to its files
        return []


def _print_status(live: dict) -> None:
    if live["pid"]:
        console.print(f"daemon [green]running[/] (pid {live['pid']}, since "
                      f"{short_time(live['since'])}, {live['state']}), state in {live['home']}")
        for mode, pool in live["pools"].items():
            bar = "█" * pool["busy"] + "·" * (pool["size"] - pool["busy"])
            console.print(f"  pool {mode:10} {bar:12} {pool['busy']}/{pool['size']} busy")
        if live.get("fault"):
            console.print(f"  [red]storage fault[/]: {live['fault']}; it takes no more work, "
                          "saves what it holds and exits to start again", highlight=False)
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
        console.print(f"  {_fire_line(fire, now, daemon_up=bool(live['pid']))}", highlight=False)
    _print_notifications(live.get("notifications") or {})
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


def _print_notifications(notifications: dict) -> None:
    """Deliveries waiting, and each channel that keeps failing (`notifications list` has more)."""
    if notifications.get("pending"):
        console.print(f"  notifications waiting: {notifications['pending']}")
    for failing in notifications.get("failing", []):
        console.print(f"  [red]notification channel failing[/]: {failing['channel']} of "
                      f"{failing['workflow']} since {short_time(failing['since'])} "
                      f"({failing['failures']} failures): {failing['error']}", highlight=False)


def _fire_line(fire: dict, now: datetime, *, daemon_up: bool) -> str:
    """When a schedule fires next, in its own zone (and local time when that differs); a time
    already past (the daemon is down, or busy catching up) is no "next": it is said to be
    overdue, and what happens to it."""
    at = zone_time(fire["next_fire_at"], fire.get("timezone"))
    which = f"schedule {fire['id']} ({fire['workflow']})"
    if from_iso(fire["next_fire_at"]) > now:
        return f"next: {at}  {which}"
    if daemon_up:
        return f"due now: {which}, {at}"
    return f"overdue: {which} was due {at}; it fires once, when the daemon starts"
