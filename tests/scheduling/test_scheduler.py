from datetime import UTC, datetime, timedelta

from freezegun import freeze_time

from easyflow_cli.core.model import Mode, ModeReason, PoolName, Trigger
from easyflow_cli.core.planning import QueuePolicy, plan_run
from easyflow_cli.core.spec import ScheduleSpec, parse_workflow_text
from easyflow_cli.core.timeutil import from_iso
from easyflow_cli.scheduling.scheduler import (
    ScheduleBook,
    add_schedule,
    next_fires,
    pause_schedule,
    prime_schedules,
    resume_schedule,
    schedule_mode,
)
from easyflow_cli.storage.run_queue import Hand

T0 = datetime(2026, 11, 25, 12, 0, 0, tzinfo=UTC)
WF = 'name = "{name}"\n{extra}\n[[steps]]\nrun = ["true"]\n'


def register(store, name="w", extra=""):
    spec = parse_workflow_text(WF.format(name=name, extra=extra))
    store.save_workflows([spec], T0)
    return spec


def book(store, started_at=T0):
    return ScheduleBook(store, QueuePolicy(), started_at)


def test_add_schedule_plans_first_fire(store):
    register(store)
    sid = add_schedule(store, "w", ScheduleSpec("every", "10s"), T0)
    row = store.get_schedule(sid)
    assert from_iso(row["next_fire_at"]) == T0 + timedelta(seconds=10)
    assert [t - T0 for t in next_fires(row, T0, 3)] == [
        timedelta(seconds=10), timedelta(seconds=20), timedelta(seconds=30)]


def test_fire_due_enqueues_eco_schedule_run_and_plans_next(store):
    register(store)
    sid = add_schedule(store, "w", ScheduleSpec("every", "10s"), T0)
    scheduler = book(store)
    assert scheduler.next_due() == T0 + timedelta(seconds=10)
    assert scheduler.fire_due(T0 + timedelta(seconds=9)) == []
    (fire,) = scheduler.fire_due(T0 + timedelta(seconds=10))
    assert fire.trigger is Trigger.SCHEDULE and fire.schedule_id == sid
    run = store.queue.get(fire.run_id)
    assert (run.trigger, run.mode, run.mode_reason, run.schedule_id) == (
        Trigger.SCHEDULE, Mode.ECO, ModeReason.SCHEDULE, sid)
    assert scheduler.next_due() == T0 + timedelta(seconds=20)


def test_catch_up_fires_once_for_many_missed_slots(store):
    register(store)
    add_schedule(store, "w", ScheduleSpec("every", "10s"), T0)
    restart = T0 + timedelta(minutes=10)  # 60 slots missed while down
    scheduler = book(store, started_at=restart)
    fires = scheduler.fire_due(restart)
    assert [f.trigger for f in fires] == [Trigger.CATCH_UP]
    assert store.queue.get(fires[0].run_id).trigger is Trigger.CATCH_UP
    assert scheduler.next_due() == restart + timedelta(seconds=10)
    assert scheduler.fire_due(restart + timedelta(seconds=1)) == []


def test_coalesce_while_previous_run_waits(store):
    register(store)
    add_schedule(store, "w", ScheduleSpec("every", "10s"), T0)
    scheduler = book(store)
    first = scheduler.fire_due(T0 + timedelta(seconds=10))[0]
    assert first.run_id is not None
    second = scheduler.fire_due(T0 + timedelta(seconds=20))[0]
    assert second.run_id is None  # the first is still queued
    store.queue.claim(Mode.ECO, now=T0 + timedelta(seconds=21), pool=PoolName.ECO,
                      hands=[Hand("w", 1)])
    assert scheduler.fire_due(T0 + timedelta(seconds=30))[0].run_id is None  # still running
    assert len(store.queue.latest()) == 1


def test_allow_overlap_doubles(store):
    register(store, extra="allow_overlap = true")
    add_schedule(store, "w", ScheduleSpec("every", "10s"), T0)
    scheduler = book(store)
    scheduler.fire_due(T0 + timedelta(seconds=10))
    assert scheduler.fire_due(T0 + timedelta(seconds=20))[0].run_id is not None
    assert len(store.queue.latest()) == 2


def test_manual_run_does_not_block_schedule(store):
    spec = register(store)
    store.queue.enqueue([plan_run(spec, trigger=Trigger.MANUAL, now=T0, policy=QueuePolicy())])
    add_schedule(store, "w", ScheduleSpec("every", "10s"), T0)
    assert book(store).fire_due(T0 + timedelta(seconds=10))[0].run_id is not None


def test_schedule_mode_and_deadline_after(store):
    register(store)
    add_schedule(store, "w", ScheduleSpec("every", "10s", None, Mode.BALANCED, 7200), T0)
    fire = book(store).fire_due(T0 + timedelta(seconds=10))[0]
    run = store.queue.get(fire.run_id)
    assert (run.mode, run.mode_reason) == (Mode.BALANCED, ModeReason.EXPLICIT)
    assert run.deadline == T0 + timedelta(seconds=10, hours=2)


def test_schedule_mode_label():
    row = {"mode": None}
    assert schedule_mode(row, None) == "eco (schedule)"
    assert schedule_mode(row, Mode.BALANCED) == "balanced (workflow)"
    assert schedule_mode({"mode": "real-time"}, Mode.ECO) == "real-time (explicit)"


def test_pause_and_resume_do_not_catch_up(store):
    register(store)
    sid = add_schedule(store, "w", ScheduleSpec("every", "10s"), T0)
    pause_schedule(store, sid)
    scheduler = book(store)
    assert scheduler.fire_due(T0 + timedelta(hours=1)) == []
    assert next_fires(store.get_schedule(sid), T0, 3) == []
    resume_schedule(store, sid, T0 + timedelta(hours=1))
    assert scheduler.next_due() == T0 + timedelta(hours=1, seconds=10)


def test_one_shot_at(store):
    register(store)
    sid = add_schedule(store, "w", ScheduleSpec("at", "2026-11-25T13:00:00.000000Z"), T0)
    scheduler = book(store)
    assert scheduler.next_due() == T0 + timedelta(hours=1)
    assert len(scheduler.fire_due(T0 + timedelta(hours=1))) == 1
    assert scheduler.next_due() is None
    assert next_fires(store.get_schedule(sid), T0 + timedelta(hours=2), 3) == []


def test_file_schedules_are_primed(store):
    with freeze_time(T0):
        register(store, extra='[[schedules]]\ncron = "30 12 * * *"\ntimezone = "UTC"')
    prime_schedules(store, T0)
    (row,) = store.schedule_rows("w")
    assert from_iso(row["next_fire_at"]) == T0 + timedelta(minutes=30)


def test_file_at_in_the_past_is_kept_and_never_fires(store):
    # A file declares; it may be added again after its moment (an exported workflow, say),
    # so like an elapsed OnCalendar= in a systemd timer the schedule stays, with no next fire.
    register(store, extra='[[schedules]]\nat = "2026-11-25T11:00:00Z"')
    prime_schedules(store, T0)
    (row,) = store.schedule_rows("w")
    assert row["next_fire_at"] is None
    assert next_fires(row, T0, 3) == []
    assert book(store).fire_due(T0 + timedelta(days=1)) == []


def test_overdue_pending_fire_is_listed_first(store):
    register(store)
    sid = add_schedule(store, "w", ScheduleSpec("every", "10s"), T0)
    later = T0 + timedelta(seconds=35)
    times = next_fires(store.get_schedule(sid), later, 2)
    assert times == [T0 + timedelta(seconds=10), T0 + timedelta(seconds=40)]
