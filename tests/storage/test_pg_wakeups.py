"""Wake-ups by LISTEN/NOTIFY: a run that may be ready, or a pool's room, is announced at commit
by its mode; a change of workflows or schedules on a channel of its own."""

import select
import time
from datetime import UTC, datetime

import pytest

from easyflow_cli.core.model import CostPriority, Mode, ModeReason, PoolName, Trigger
from easyflow_cli.core.planning import PlannedRun
from easyflow_cli.core.spec import ScheduleSpec, parse_workflow_text
from easyflow_cli.scheduling.scheduler import add_schedule, pause_schedule
from easyflow_cli.storage.cluster_queue import WorkerInfo
from easyflow_cli.storage.run_queue import Hand

pytest.importorskip("psycopg", reason="the [cluster] extra is not installed")
from easyflow_cli.storage.pg_store import PgStore  # noqa: E402
from easyflow_cli.storage.pg_wakeups import Changes, Wakeups  # noqa: E402
from easyflow_cli.storage.pg_workers import PgWorkers  # noqa: E402

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
WAIT_S = 10.0


def planned(mode: Mode) -> PlannedRun:
    return PlannedRun("a", Trigger.MANUAL, mode, ModeReason.MANUAL, CostPriority.NORMAL,
                      None, NOW)


def woken(wakeups: Wakeups, last: Mode) -> set[Mode]:
    """The modes announced until `last` is (or WAIT_S has passed)."""
    modes: set[Mode] = set()
    deadline = time.monotonic() + WAIT_S
    while last not in modes and (left := deadline - time.monotonic()) > 0:
        if select.select([wakeups], [], [], left)[0]:
            modes |= wakeups.modes()
    return modes


def test_a_listener_is_woken_by_each_mode_enqueued_or_put_back(database_url):
    with PgStore(database_url) as store, Wakeups(database_url) as wakeups:
        assert wakeups.modes() == set()
        store.queue.enqueue([planned(Mode.ECO), planned(Mode.REAL_TIME), planned(Mode.ECO)])
        assert woken(wakeups, Mode.REAL_TIME) == {Mode.ECO, Mode.REAL_TIME}
        [[run]] = store.queue.claim(Mode.ECO, now=NOW, pool=PoolName.ECO, hands=[Hand("w", 1)])
        store.queue.enqueue([planned(Mode.BALANCED)])
        assert woken(wakeups, Mode.BALANCED) == {Mode.BALANCED}  # the claim announced nothing
        store.queue.requeue([run.id])
        assert woken(wakeups, Mode.ECO) == {Mode.ECO}


def test_nothing_is_announced_before_commit_nor_after_a_rollback(database_url):
    with PgStore(database_url) as store, Wakeups(database_url) as wakeups:
        with pytest.raises(RuntimeError), store.write():
            store.queue.enqueue([planned(Mode.BALANCED)])
            assert select.select([wakeups], [], [], 0.2)[0] == []
            raise RuntimeError("the transaction fails")
        store.queue.enqueue([planned(Mode.ECO)])
        assert woken(wakeups, Mode.ECO) == {Mode.ECO}


def test_a_worker_registering_or_stopping_wakes_a_listener_with_its_pool(database_url):
    worker = WorkerInfo("node-a:1", "node-a", PoolName.ECO, 2, 1, NOW, NOW)
    with PgStore(database_url) as store, Wakeups(database_url) as wakeups:
        PgWorkers(store).register(worker)
        assert woken(wakeups, Mode.ECO) == {Mode.ECO}
        PgWorkers(store).stop(worker.name, now=NOW)
        assert woken(wakeups, Mode.ECO) == {Mode.ECO}


def heard_change(changes: Changes, timeout: float = WAIT_S) -> bool:
    """Whether a change is heard within `timeout`."""
    deadline = time.monotonic() + timeout
    while (left := deadline - time.monotonic()) > 0:
        if select.select([changes], [], [], left)[0] and changes.changed():
            return True
    return False


def test_changes_of_workflows_and_schedules_are_heard_from_other_sessions(database_url):
    spec = parse_workflow_text('name = "a"\n[[steps]]\nrun = ["true"]\n')
    with PgStore(database_url) as store, PgStore(database_url) as own, \
            Changes(database_url, own_pid=own.conn.info.backend_pid) as changes:
        store.save_workflows([spec], NOW)
        assert heard_change(changes)
        schedule_id = add_schedule(store, "a", ScheduleSpec("every", "1m"), NOW)
        assert heard_change(changes)
        pause_schedule(own, schedule_id)  # what the listener's own store did, it knows
        store.set_workflow_disabled("a", True)
        assert heard_change(changes)
        assert not heard_change(changes, timeout=0.2)
        with pytest.raises(RuntimeError), store.write():
            store.delete_schedule(schedule_id)
            raise RuntimeError("the transaction fails")
        assert not heard_change(changes, timeout=0.2)  # nothing changed
        store.remove_workflow("a", NOW)
        assert heard_change(changes)
