"""When schedules fire: the next fire time of each schedule, catch-up and coalescing.

`core/triggers.py` decides *when*; this module turns a due schedule
into a queued run, and the queue decides what runs next. The daemon asks `next_due()` how long
it may sleep and calls `fire_due(now)` when it wakes.
"""

from __future__ import annotations

import functools
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from easyflow_cli.core import triggers
from easyflow_cli.core.config import CostConfig
from easyflow_cli.core.errors import NotFound
from easyflow_cli.core.jitter import fixed_delay, schedule_salt
from easyflow_cli.core.model import Mode, Trigger
from easyflow_cli.core.planning import QueuePolicy, plan_run
from easyflow_cli.core.spec import ScheduleSpec
from easyflow_cli.core.timeutil import from_iso, to_iso
from easyflow_cli.storage.backend import Backend
from easyflow_cli.storage.learned_durations import expectation
from easyflow_cli.storage.plan_estimate import eco_estimate

log = logging.getLogger("easyflow.scheduler")
# systemd's machine id, and the D-Bus copy older systems keep.
MACHINE_ID_FILES = (Path("/etc/machine-id"), Path("/var/lib/dbus/machine-id"))


@dataclass(frozen=True)
class Fire:
    """One schedule firing: which run it queued (None when coalesced into a waiting run)."""

    schedule_id: int
    workflow: str
    fire_time: datetime
    trigger: Trigger
    run_id: int | None


def first_fire(kind: str, expr: str, timezone: str | None, now: datetime) -> datetime | None:
    """A new schedule's first nominal fire time (without jitter), strictly after `now`."""
    return triggers.next_fire_after(kind, expr, timezone, now, anchor=now)


@functools.cache
def machine_id() -> str:
    """This machine's id, which spreads jittered fires across machines ("" if it has none)."""
    for path in MACHINE_ID_FILES:
        try:
            return path.read_text().strip()
        except OSError:
            continue
    return ""


def jitter_of(row: dict[str, Any]) -> timedelta:
    """A stored schedule's fixed delay within its jitter."""
    return fixed_delay(row.get("jitter_s"), schedule_salt(machine_id(), row["workflow"],
                                                            row["id"]))


def fire_after(row: dict[str, Any], now: datetime, anchor: datetime) -> datetime | None:
    """A stored schedule's next fire time (jitter included) strictly after `now`: the nominal
    times keep their rhythm, each moved by the same delay."""
    delay = jitter_of(row)
    nominal = triggers.next_fire_after(row["kind"], row["expr"], row["timezone"], now - delay,
                                       anchor)
    return None if nominal is None else nominal + delay


def next_fires(row: dict[str, Any], after: datetime, count: int) -> list[datetime]:
    """The next `count` fire times of a stored schedule, jitter included (what `schedule next`
    shows). The stored next fire comes first; it may already be due (a catch-up waiting for
    the daemon)."""
    if row["paused"] or count < 1:
        return []
    anchor = from_iso(row["created_at"])
    pending = from_iso(row["next_fire_at"])
    delay = jitter_of(row)
    if pending is None:
        if row["last_fire_at"] is not None:
            return []  # a one-shot `at` that has fired
        start, first = after, []
    else:
        start, first = max(pending, after), [pending]
    later = triggers.next_fire_times(row["kind"], row["expr"], row["timezone"], start - delay,
                                     anchor, count - len(first))
    return first + [moment + delay for moment in later]


def prime_schedules(store: Backend, now: datetime) -> None:
    """Give schedules that were never planned (new ones from files) their first fire time."""
    for row in store.unplanned_schedules():
        nxt = fire_after(row, now, from_iso(row["created_at"]) or now)
        store.record_schedule_fire(row["id"], fired_at=None, next_fire_at=to_iso(nxt))


def schedule_mode(row: dict[str, Any], workflow_mode: Mode | None) -> str:
    """The mode a schedule's runs get, as `mode (reason)`."""
    if row["mode"]:
        return f"{row['mode']} (explicit)"
    if workflow_mode:
        return f"{workflow_mode.value} (workflow)"
    return "eco (schedule)"


def add_schedule(store: Backend, workflow: str, schedule: ScheduleSpec, now: datetime) -> int:
    store.get_workflow(workflow)
    with store.write():
        schedule_id = store.insert_schedule(workflow, schedule, origin="cli", now_iso=to_iso(now))
        nxt = fire_after(store.get_schedule(schedule_id), now, now)
        store.record_schedule_fire(schedule_id, fired_at=None, next_fire_at=to_iso(nxt))
    return schedule_id


def set_schedule(store: Backend, schedule_id: int, schedule: ScheduleSpec, now: datetime) -> None:
    """Change a schedule in place: its id, origin and history stay; its next fire is planned
    anew from now (a paused schedule stays paused). An `every` keeps counting from when the
    schedule was created."""
    store.get_schedule(schedule_id)
    with store.write():
        store.update_schedule(schedule_id, schedule)
        row = store.get_schedule(schedule_id)
        if not row["paused"]:
            nxt = fire_after(row, now, from_iso(row["created_at"]) or now)
            store.set_schedule_state(schedule_id, paused=False, next_fire_at=to_iso(nxt))


def disable_workflow(store: Backend, name: str) -> None:
    """Its schedules stop firing and `run --now` refuses it, until it is enabled."""
    store.set_workflow_disabled(name, True)


def enable_workflow(store: Backend, name: str, now: datetime) -> None:
    """Let it run again; its schedules fire from now on (slots missed meanwhile are not caught
    up, as for a resumed schedule)."""
    was_disabled = store.workflow_disabled(name)
    with store.write():
        store.set_workflow_disabled(name, False)
        if not was_disabled:
            return
        for row in store.schedule_rows(name):
            if not row["paused"] and (row["next_fire_at"] or not row["last_fire_at"]):
                nxt = fire_after(row, now, from_iso(row["created_at"]) or now)
                store.set_schedule_state(row["id"], paused=False, next_fire_at=to_iso(nxt))


def pause_schedule(store: Backend, schedule_id: int) -> None:
    store.get_schedule(schedule_id)
    store.set_schedule_state(schedule_id, paused=True, next_fire_at=None)


def resume_schedule(store: Backend, schedule_id: int, now: datetime) -> None:
    """Resume from now on: slots missed while paused are not caught up."""
    row = store.get_schedule(schedule_id)
    nxt = fire_after(row, now, now)
    store.set_schedule_state(schedule_id, paused=False, next_fire_at=to_iso(nxt))


class ScheduleBook:
    """The daemon's view of every active schedule and when it fires next."""

    def __init__(self, store: Backend, policy: QueuePolicy, started_at: datetime,
                 costs: CostConfig | None = None) -> None:
        self.store = store
        self.policy = policy
        self.started_at = started_at
        self.costs = costs or CostConfig()  # what the learned energy estimates assume

    def next_due(self) -> datetime | None:
        upcoming = self.store.upcoming_schedules(1)
        return from_iso(upcoming[0]["next_fire_at"]) if upcoming else None

    def fire_due(self, now: datetime) -> list[Fire]:
        """Fire every schedule whose time has come, once each, however many slots it missed."""
        return [self._fire(row, now) for row in self.store.due_schedules(to_iso(now))]

    def follow_clock_step(self, seconds: float) -> int:
        """The wall clock was stepped by `seconds`: move each `every` schedule (its anchor and
        its planned fire) with it, so that its intervals stay real elapsed time: neither an
        hour of silence after a step back nor a fire too early after a step forward; how many
        moved. Cron and `at` times are times of the calendar, and stay."""
        step = timedelta(seconds=seconds)
        self.started_at += step
        rows = self.store.pending_schedules("every")
        with self.store.write():
            for row in rows:
                self.store.reanchor_schedule(
                    row["id"], created_at=to_iso(from_iso(row["created_at"]) + step),
                    next_fire_at=to_iso(from_iso(row["next_fire_at"]) + step))
        return len(rows)

    def _fire(self, row: dict[str, Any], now: datetime) -> Fire:
        fire_time = from_iso(row["next_fire_at"])
        # A slot that passed before this daemon started was missed during downtime.
        trigger = Trigger.CATCH_UP if fire_time < self.started_at else Trigger.SCHEDULE
        nxt = fire_after(row, now, from_iso(row["created_at"]) or now)
        # One transaction: a daemon killed in between must not fire the same slot twice.
        with self.store.write():
            run_id = self._enqueue(row, trigger, now)
            self.store.record_schedule_fire(row["id"], fired_at=to_iso(now),
                                            next_fire_at=to_iso(nxt))
        return Fire(row["id"], row["workflow"], fire_time, trigger, run_id)

    def _enqueue(self, row: dict[str, Any], trigger: Trigger, now: datetime) -> int | None:
        try:
            spec = self.store.get_workflow(row["workflow"])
        except NotFound:
            return None
        queue = self.store.queue
        if not spec.allow_overlap and queue.has_pending_recurring(spec.name):
            log.info("schedule %s: %s still queued or running; not doubling it",
                     row["id"], spec.name)
            return None
        planned = plan_run(
            spec, trigger=trigger, now=now, policy=self.policy,
            override=Mode(row["mode"]) if row["mode"] else None,
            deadline_after=row["deadline_after_s"],
            expected=lambda mode: expectation(queue, spec.name, mode, self.costs),
            estimate=eco_estimate(queue, spec.name, self.policy), schedule_id=row["id"],
        )
        return queue.enqueue([planned])[0]


def describe_delay(moment: datetime | None, now: datetime) -> str:
    if moment is None:
        return "-"
    delta = moment - now
    if delta < timedelta(0):
        return "due"
    from easyflow_cli.core.durations import format_duration

    return "in " + format_duration(max(1, int(delta.total_seconds())))
