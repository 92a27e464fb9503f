from datetime import UTC, datetime, timedelta

from freezegun import freeze_time

from easyflow_cli.core.jitter import fixed_delay, schedule_salt
from easyflow_cli.core.model import (
    CostPriority,
    Mode,
    ModeReason,
    Outcome,
    PoolName,
    RunState,
    Trigger,
)
from easyflow_cli.core.planning import PlannedRun, QueuePolicy, plan_run
from easyflow_cli.core.spec import ScheduleSpec, parse_workflow_text
from easyflow_cli.core.timeutil import from_iso
from easyflow_cli.scheduling.scheduler import (
    ScheduleBook,
    add_schedule,
    disable_workflow,
    enable_workflow,
    jitter_of,
    machine_id,
    next_fires,
    pause_schedule,
    prime_schedules,
    resume_schedule,
    schedule_mode,
    set_schedule,
)
from easyflow_cli.storage.run_queue import Hand, RunEnd, RunStart

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


def test_jitter_moves_every_fire_by_one_fixed_offset_within_it(store):
    register(store)
    sid = add_schedule(store, "w", ScheduleSpec("every", "1h", jitter=300), T0)
    row = store.get_schedule(sid)
    delay = jitter_of(row)
    assert timedelta(0) < delay < timedelta(minutes=5)
    assert delay == fixed_delay(300, schedule_salt(machine_id(), "w", sid))
    assert [t - T0 for t in next_fires(row, T0, 3)] == [
        timedelta(hours=h) + delay for h in (1, 2, 3)]
    fired = book(store).fire_due(T0 + timedelta(hours=1) + delay)
    assert fired[0].run_id is not None
    after = store.get_schedule(sid)
    assert from_iso(after["next_fire_at"]) == T0 + timedelta(hours=2) + delay
    assert book(store).fire_due(T0 + timedelta(hours=1, minutes=59)) == []


def test_fixed_delays_differ_between_schedules_and_machines():
    delays = {fixed_delay(3600, schedule_salt(machine, "w", sid))
              for machine in ("m1", "m2") for sid in range(1, 6)}
    assert len(delays) == 10 and all(timedelta(0) <= d < timedelta(hours=1) for d in delays)
    assert fixed_delay(None, "x") == fixed_delay(0, "x") == timedelta(0)


def test_set_schedule_keeps_id_and_history_and_replans(store):
    register(store)
    sid = add_schedule(store, "w", ScheduleSpec("every", "10s"), T0)
    book(store).fire_due(T0 + timedelta(seconds=10))
    set_schedule(store, sid, ScheduleSpec("cron", "0 13 * * *", "UTC", Mode.BALANCED, 60.0),
                 T0 + timedelta(seconds=11))
    row = store.get_schedule(sid)
    assert (row["kind"], row["expr"], row["mode"], row["deadline_after_s"]) == (
        "cron", "0 13 * * *", "balanced", 60.0)
    assert row["last_fire_at"] is not None and row["origin"] == "cli"
    assert from_iso(row["next_fire_at"]) == T0 + timedelta(hours=1)
    assert store.queue.latest(workflow="w")[0].schedule_id == sid


def test_a_disabled_workflow_s_schedules_do_not_fire_and_resume_from_now(store):
    register(store)
    sid = add_schedule(store, "w", ScheduleSpec("every", "10s"), T0)
    disable_workflow(store, "w")
    assert book(store).fire_due(T0 + timedelta(minutes=5)) == []
    assert book(store).next_due() is None
    enable_workflow(store, "w", T0 + timedelta(minutes=5))
    row = store.get_schedule(sid)
    assert from_iso(row["next_fire_at"]) == T0 + timedelta(minutes=5, seconds=10)
    assert [f.schedule_id for f in book(store).fire_due(T0 + timedelta(minutes=6))] == [sid]


def test_adding_the_file_again_keeps_the_workflow_disabled(store):
    register(store)
    disable_workflow(store, "w")
    register(store, extra="max_concurrent = 3")
    assert store.workflow_disabled("w")
    assert store.workflow_rows()[0]["max_concurrent"] == 3


def test_a_scheduled_run_is_promoted_in_time_for_its_learned_p90(store):
    """Its eco runs took 2 h, 3 h lately: due 5 h after the fire, it is promoted 4 h before, its
    p90 (3 h) plus the hour its prediction was recently off by."""
    register(store)
    for index, hours in enumerate([2.0] * 6 + [3.0] * 3):
        finished_eco_run(store.queue, T0 - timedelta(days=1) + timedelta(hours=index), hours)
    sid = add_schedule(store, "w", ScheduleSpec("every", "1d", deadline_after=5 * 3600.0), T0)
    (fire,) = book(store).fire_due(T0 + timedelta(days=1))
    run = store.queue.get(fire.run_id)
    assert store.get_schedule(sid)["deadline_after_s"] == 5 * 3600.0
    assert run.mode is Mode.ECO and run.deadline == T0 + timedelta(days=1, hours=5)
    assert run.promote_at == run.deadline - timedelta(hours=4)


def finished_eco_run(queue, at, hours):
    """A successful eco run of `w` that took `hours`, through the queue's own transitions."""
    (run_id,) = queue.enqueue([PlannedRun("w", Trigger.SCHEDULE, Mode.ECO, ModeReason.SCHEDULE,
                                          CostPriority.NORMAL, None, at)])
    queue.claim_ids([run_id], now=at, pool=PoolName.ECO, worker="w")
    queue.start([RunStart(run_id, at, at, pid=1, log_path="/x.log", off_peak=False)])
    outcome = Outcome(RunState.SUCCEEDED, 0, duration_s=hours * 3600)
    queue.finish([RunEnd.of(queue.get(run_id), outcome, at + timedelta(hours=hours))])
