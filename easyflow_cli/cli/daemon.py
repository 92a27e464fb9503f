"""`easyflow daemon` (what systemd starts) and `easyflow status`."""

from __future__ import annotations

import sys
from pathlib import Path

import typer

from easyflow_cli.cli.common import open_store
from easyflow_cli.cli.output import (
    CSV_OPTION,
    JSON_OPTION,
    console,
    print_csv,
    print_json,
    short_time,
)
from easyflow_cli.cli.status_lines import held_by_limit, print_queue, print_running
from easyflow_cli.core.paths import state_dir
from easyflow_cli.core.timeutil import utcnow


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
    `--csv` prints the runs running now. On a cluster: its coordinator (exit code 0, or 1 when
    none runs) and its workers.
    """
    from easyflow_cli.cli.common import configured_cluster
    from easyflow_cli.runtime.client import Silence, ask
    from easyflow_cli.runtime.protocol import StatusRequest

    cluster = configured_cluster()
    if cluster is not None:
        from easyflow_cli.cli.cluster_status import cluster_status

        coordinated = cluster_status(cluster, as_json=as_json, as_csv=as_csv)
        raise typer.Exit(RUNNING if coordinated else NOT_RUNNING)
    live = ask(StatusRequest())
    code = RUNNING
    if isinstance(live, Silence):
        code = NOT_ANSWERING if live is Silence.NOT_ANSWERING else NOT_RUNNING
        live = _status_without_daemon(code)
    live["held_by_limit"] = held_by_limit()
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
    print_queue(live, daemon_up=bool(live["pid"]))
    _print_notifications(live.get("notifications") or {})
    print_running(live.get("running", []))  # a daemon started before the upgrade has none


def _print_notifications(notifications: dict) -> None:
    """Deliveries waiting, and each channel that keeps failing (`notifications list` has more)."""
    if notifications.get("pending"):
        console.print(f"  notifications waiting: {notifications['pending']}")
    for failing in notifications.get("failing", []):
        console.print(f"  [red]notification channel failing[/]: {failing['channel']} of "
                      f"{failing['workflow']} since {short_time(failing['since'])} "
                      f"({failing['failures']} failures): {failing['error']}", highlight=False)
