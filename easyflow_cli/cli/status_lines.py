"""What both views of `easyflow status` print (one box's daemon, a cluster's coordinator):
the workflows held by their `max_concurrent`, the next fires, the runs running now."""

from __future__ import annotations

from datetime import datetime

from easyflow_cli.cli.common import open_store
from easyflow_cli.cli.output import console, render_rows, zone_time
from easyflow_cli.core.timeutil import from_iso, utcnow


def held_by_limit() -> list[dict]:
    """Workflows whose queued runs wait for their max_concurrent (read here: the database
    says it whether the daemon answers or not)."""
    from dataclasses import asdict

    from easyflow_cli.storage.live_files import StorageFault

    try:
        with open_store() as store:
            return [asdict(held) for held in store.queue.held_by_limit()]
    except StorageFault:  # the daemon's own answer says what happened to its files
        return []


def print_queue(live: dict, *, daemon_up: bool) -> None:
    """The runs queued by mode, the workflows waiting for their max_concurrent, the next
    fires."""
    queued = ", ".join(f"{mode} {n}" for mode, n in live["queue"].items())
    console.print(f"  queued: {queued}")
    for held in live["held_by_limit"]:
        console.print(f"  waiting for max_concurrent: {held['workflow']} "
                      f"{held['queued']} queued, {held['running']} running "
                      f"(max_concurrent = {held['max_concurrent']})", highlight=False)
    now = utcnow()
    for fire in live["next_fires"]:
        console.print(f"  {fire_line(fire, now, daemon_up=daemon_up)}", highlight=False)


def print_running(running: list[dict]) -> None:
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


def fire_line(fire: dict, now: datetime, *, daemon_up: bool) -> str:
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
