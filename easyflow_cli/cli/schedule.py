"""`easyflow schedule ...`: when workflows run by themselves, and when they will run next."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

import typer

from easyflow_cli.cli.common import open_store
from easyflow_cli.cli.group import EasyflowGroup
from easyflow_cli.cli.output import (
    CSV_OPTION,
    JSON_OPTION,
    console,
    err_console,
    past_fire,
    render_rows,
    zone_time,
)
from easyflow_cli.core.durations import format_duration
from easyflow_cli.core.errors import BadInput, shown
from easyflow_cli.core.model import Mode
from easyflow_cli.core.timeutil import from_iso, to_iso, utcnow

if TYPE_CHECKING:
    from easyflow_cli.core.spec import ScheduleSpec
    from easyflow_cli.storage.backend import Backend

app = typer.Typer(cls=EasyflowGroup, no_args_is_help=True, rich_markup_mode=None,
                  help="Schedule workflows: cron, every, at.")


CRON_OPTION = typer.Option(None, "--cron", help="A 5-field crontab line or @daily etc.")
EVERY_OPTION = typer.Option(None, "--every", help="An interval: 30s, 5m, 2h, 1d.")
AT_OPTION = typer.Option(None, "--at", help="Once, at this ISO-8601 time.")
MODE_OPTION = typer.Option(None, "--mode", help="Mode for its runs (default: eco).")
DEADLINE_AFTER_OPTION = typer.Option(None, "--deadline-after",
                                     help="Each run is due this long after its fire.")
TIMEZONE_OPTION = typer.Option(None, "--timezone", help="IANA zone; default: local time.")
JITTER_OPTION = typer.Option(None, "--jitter",
                             help="Delay each fire by a fixed random offset within this (5m).")


@app.command("add")
def add(
    workflow: str = typer.Argument(..., help="The workflow to schedule."),
    cron: str | None = CRON_OPTION,
    every: str | None = EVERY_OPTION,
    at: str | None = AT_OPTION,
    mode: Mode | None = MODE_OPTION,
    deadline_after: str | None = DEADLINE_AFTER_OPTION,
    timezone: str | None = TIMEZONE_OPTION,
    jitter: str | None = JITTER_OPTION,
) -> None:
    """Add a schedule to a workflow; prints its id."""
    from easyflow_cli.scheduling.scheduler import add_schedule

    schedule = _schedule_of(cron, every, at, mode, deadline_after, timezone, jitter)
    with open_store() as store:
        schedule_id = add_schedule(store, workflow, schedule, utcnow())
        row = store.get_schedule(schedule_id)
    err_console.print(f"schedule {schedule_id}: {workflow} {_added(row)}", highlight=False)
    typer.echo(schedule_id)
    _notify_daemon()


@app.command("set")
def set_(
    schedule_id: int = typer.Argument(..., help="The schedule to change (see schedule list)."),
    cron: str | None = CRON_OPTION,
    every: str | None = EVERY_OPTION,
    at: str | None = AT_OPTION,
    mode: Mode | None = MODE_OPTION,
    deadline_after: str | None = DEADLINE_AFTER_OPTION,
    timezone: str | None = TIMEZONE_OPTION,
    jitter: str | None = JITTER_OPTION,
) -> None:
    """Change a schedule in place: it keeps its id and its history. Give its new definition
    whole (one of --cron, --every, --at, and the options it should keep)."""
    from easyflow_cli.scheduling.scheduler import set_schedule

    schedule = _schedule_of(cron, every, at, mode, deadline_after, timezone, jitter)
    with open_store() as store:
        set_schedule(store, schedule_id, schedule, utcnow())
        row = store.get_schedule(schedule_id)
    state = "paused" if row["paused"] else _added(row)
    err_console.print(f"schedule {schedule_id}: {row['workflow']} {state}", highlight=False)
    _notify_daemon()


def _schedule_of(cron: str | None, every: str | None, at: str | None, mode: Mode | None,
                 deadline_after: str | None, timezone: str | None,
                 jitter: str | None) -> ScheduleSpec:
    """The schedule the options describe, checked (exit 2 naming the option)."""
    from easyflow_cli.core.spec import ScheduleSpec
    from easyflow_cli.core.triggers import check_schedule
    from easyflow_cli.scheduling.scheduler import first_fire

    given = [(k, v) for k, v in (("cron", cron), ("every", every), ("at", at)) if v is not None]
    if len(given) != 1:
        raise BadInput("give exactly one of --cron, --every, --at")
    kind, text = given[0]
    try:
        expr = check_schedule(kind, text, timezone)
    except ValueError as exc:
        raise BadInput(f"--{kind}: {exc}") from None
    if first_fire(kind, expr, timezone, utcnow()) is None:
        # As at(1) refuses a job "destined in the past": it would be stored and never fire.
        raise BadInput(f"--{kind}: {shown(text)} is in the past; give a time after now")
    return ScheduleSpec(kind, expr, timezone, mode,
                        _duration_option("--deadline-after", deadline_after),
                        _duration_option("--jitter", jitter))


def _duration_option(option: str, text: str | None) -> float | None:
    from easyflow_cli.core.durations import parse_duration

    try:
        return parse_duration(text) if text is not None else None
    except ValueError as exc:
        raise BadInput(f"{option}: {exc}") from None


def _added(row: dict[str, Any]) -> str:
    """What was added: an `at` moment once, in the zone it was given in; a cron or interval's
    next fire in the schedule's zone (and local time)."""
    if row["kind"] == "at":
        return f"at {zone_time(row['next_fire_at'], row['timezone'], also_local=False)}"
    fire = zone_time(row["next_fire_at"], row["timezone"])
    zone = f" ({row['timezone']})" if row["timezone"] else ""
    jitter = f", jitter {format_duration(row['jitter_s'])}" if row["jitter_s"] else ""
    return f"{row['kind']} {row['expr']!r}{zone}{jitter}, next fire {fire}"


def _notify_daemon() -> None:
    from easyflow_cli.runtime.client import notify_reload

    notify_reload()


def _listing_row(row: dict[str, Any], store: Backend, now: datetime) -> dict[str, Any]:
    from easyflow_cli.scheduling.scheduler import next_fires, schedule_mode

    spec_mode = store.get_workflow(row["workflow"]).execution_mode
    nxt = [] if store.workflow_disabled(row["workflow"]) else next_fires(row, now, 1)
    jitter = format_duration(row["jitter_s"]) if row["jitter_s"] else None
    return {**row, "paused": bool(row["paused"]), "next_fire_at": to_iso(nxt[0]) if nxt else None,
            "runs_as": schedule_mode(row, spec_mode), "jitter": jitter}


@app.command("list")
def list_(
    workflow: str | None = typer.Option(None, "--workflow", "-w", help="Only this workflow's."),
    as_json: bool = JSON_OPTION,
    as_csv: bool = CSV_OPTION,
) -> None:
    """List schedules with their next fire time and the mode their runs will get."""
    now = utcnow()
    with open_store() as store:
        if workflow:
            store.get_workflow(workflow)
        rows = [_listing_row(r, store, now) for r in store.schedule_rows(workflow)]
    daemon = DaemonUp()
    render_rows(rows, ["id", "workflow", "kind", "expr", "timezone", "runs_as", "paused",
                       "next_fire_at", "origin", "jitter"], as_json=as_json, as_csv=as_csv,
                empty="no schedules",
                row_formatters={"next_fire_at": lambda r: _next_cell(r, now, daemon),
                                "expr": _expr_cell})


def _expr_cell(row: dict[str, Any]) -> str:
    """An `at` schedule's moment is stored in UTC; people read it in the schedule's zone."""
    return zone_time(row["expr"], row["timezone"]) if row["kind"] == "at" else row["expr"]


def _next_cell(row: dict[str, Any], now: datetime, daemon: DaemonUp) -> str:
    value = row["next_fire_at"]
    if not value:
        return "-"
    return f"{zone_time(value, row['timezone'])}, {_delay(from_iso(value), now, daemon)}"


class DaemonUp:
    """Whether a daemon (on a cluster, its coordinator) is up, asked once and only if a listing
    shows a fire time already past (whether it is firing now or waits for a daemon)."""

    def __init__(self) -> None:
        self._up: bool | None = None

    def __bool__(self) -> bool:
        if self._up is None:
            from easyflow_cli.cli.common import configured_cluster
            from easyflow_cli.core.paths import state_dir
            from easyflow_cli.runtime.client import listening

            if configured_cluster() is None:
                self._up = listening(state_dir())
            else:
                with open_store() as store:
                    assert store.cluster is not None
                    self._up = store.cluster.coordinator() is not None
        return self._up


def _delay(moment: datetime, now: datetime, daemon: DaemonUp) -> str:
    """`in 18h33m`, or for a time already past what happens to it."""
    from easyflow_cli.scheduling.scheduler import describe_delay

    return describe_delay(moment, now) if moment > now else past_fire(bool(daemon))


@app.command("next")
def next_(
    target: str = typer.Argument(..., help="A schedule id, or a workflow name."),
    count: int = typer.Option(5, "--count", "-n", min=1, max=1000),
    as_json: bool = JSON_OPTION,
    as_csv: bool = CSV_OPTION,
) -> None:
    """When will this run? The next N fire times of a schedule, or of all a workflow's, in the
    schedule's zone (and local time when that differs)."""
    from easyflow_cli.scheduling.scheduler import next_fires

    now = utcnow()
    with open_store() as store:
        if target.isascii() and target.isdigit():
            rows = [store.get_schedule(int(target))]
        else:
            store.get_workflow(target)
            rows = store.schedule_rows(target)
        disabled = {name for name in {r["workflow"] for r in rows}
                    if store.workflow_disabled(name)}
    fires = sorted((t, r["id"], r["workflow"], r["timezone"])
                   for r in rows if r["workflow"] not in disabled
                   for t in next_fires(r, now, count))
    listing = [{"schedule_id": sid, "workflow": wf, "fire_at": to_iso(t), "timezone": zone}
               for t, sid, wf, zone in fires[:count]]
    if as_json or as_csv or not listing:
        render_rows(listing, ["schedule_id", "workflow", "fire_at", "timezone"],
                    as_json=as_json, as_csv=as_csv, empty="no upcoming fires")
        return
    daemon = DaemonUp()
    for fire in listing:
        delay = _delay(from_iso(fire["fire_at"]), now, daemon)
        console.print(f"{zone_time(fire['fire_at'], fire['timezone'])}  {delay:>12}  "
                      f"schedule {fire['schedule_id']} ({fire['workflow']})", highlight=False)


@app.command("remove")
def remove(schedule_id: int) -> None:
    """Delete a schedule."""
    with open_store() as store:
        store.delete_schedule(schedule_id)
    err_console.print(f"removed schedule {schedule_id}")
    _notify_daemon()


@app.command("pause")
def pause(schedule_id: int) -> None:
    """Stop a schedule from firing until it is resumed."""
    from easyflow_cli.scheduling.scheduler import pause_schedule

    with open_store() as store:
        pause_schedule(store, schedule_id)
    err_console.print(f"paused schedule {schedule_id}")
    _notify_daemon()


@app.command("resume")
def resume(schedule_id: int) -> None:
    """Let a paused schedule fire again, from now on (missed slots are not caught up)."""
    from easyflow_cli.scheduling.scheduler import resume_schedule

    with open_store() as store:
        resume_schedule(store, schedule_id, utcnow())
    err_console.print(f"resumed schedule {schedule_id}")
    _notify_daemon()
