"""Recovery after a daemon died: which recorded process groups it kills."""

import subprocess
from datetime import UTC, datetime

import pytest

from easyflow_cli.core.model import (
    CostPriority,
    Mode,
    ModeReason,
    PoolName,
    RunState,
    StepGroup,
    Trigger,
)
from easyflow_cli.core.planning import PlannedRun
from easyflow_cli.runtime.clock import SystemClock
from easyflow_cli.runtime.daemon.recovery import recover_abandoned_runs
from easyflow_cli.runtime.process_identity import boot_id, group_of, is_still_ours
from easyflow_cli.runtime.start_slot import StartSlot, slot_path
from easyflow_cli.storage.run_queue import Hand, RunStart

NOW = datetime(2026, 1, 1, tzinfo=UTC)


@pytest.fixture
def leader():
    """A process leading its own group, as a step's does."""
    proc = subprocess.Popen(["sleep", "30"], start_new_session=True)
    yield proc
    proc.kill()
    proc.wait()


def abandoned_run(store, group: StepGroup) -> int:
    """A run left `running` by a dead daemon, its step's group recorded as `group`."""
    queue = store.queue
    planned = PlannedRun("w", Trigger.MANUAL, Mode.BALANCED, ModeReason.MANUAL,
                         CostPriority.NORMAL, None, NOW)
    run_id = queue.enqueue([planned])[0]
    queue.claim(Mode.BALANCED, now=NOW, pool=PoolName.BALANCED, hands=[Hand("w", 1)])
    queue.start([RunStart(run_id, NOW, NOW, pid=1)])
    queue.record_step(run_id, group)
    return run_id


def test_recovery_kills_a_group_that_is_still_the_run_s(store, leader):
    abandoned_run(store, group_of(leader.pid))
    recover_abandoned_runs(store, SystemClock())
    assert leader.wait(timeout=5) == -9


def test_recovery_leaves_a_pgid_that_now_names_a_stranger(store, leader):
    """The recorded pgid was reused: the process there started at another time, or in another
    boot. It is not the run's, and lives on."""
    recorded = group_of(leader.pid)
    reused = StepGroup(leader.pid, recorded.leader_start + 1, recorded.boot_id)
    other_boot = StepGroup(leader.pid, recorded.leader_start, "another boot")
    unknown = StepGroup(leader.pid)  # recorded before leaders were identified
    for group in (reused, other_boot, unknown):
        run_id = abandoned_run(store, group)
        recover_abandoned_runs(store, SystemClock())
        assert store.queue.get(run_id).state.finished
    assert leader.poll() is None


def test_a_group_whose_leader_exited_is_still_the_run_s(leader):
    recorded = group_of(leader.pid)
    leader.kill()
    leader.wait()
    assert is_still_ours(recorded)
    assert recorded.boot_id == boot_id() and recorded.leader_start > 0


def unstarted_run(store) -> int:
    """A run a dead daemon had handed to a worker whose start report never arrived."""
    queue = store.queue
    planned = PlannedRun("w", Trigger.MANUAL, Mode.BALANCED, ModeReason.MANUAL,
                         CostPriority.NORMAL, None, NOW)
    run_id = queue.enqueue([planned])[0]
    queue.claim_ids([run_id], now=NOW, pool=PoolName.BALANCED, worker="balanced-1")
    return run_id


def test_a_run_a_dead_worker_s_slot_names_as_begun_is_failed_not_run_again(store, tmp_path):
    begun, never_begun = unstarted_run(store), unstarted_run(store)
    slots = tmp_path / "workers"
    slots.mkdir()
    slot = StartSlot(slot_path(slots, "t" * 32, 4242))
    slot.begin(begun)
    recover_abandoned_runs(store, SystemClock(), slots=slots)
    assert store.queue.get(begun).state is RunState.FAILED
    assert store.queue.get(never_begun).state is RunState.QUEUED
    assert not slot.path.exists()
