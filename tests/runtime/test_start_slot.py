"""A worker's start slot: the runs whose steps it last began."""

import os

from easyflow_cli.runtime.start_slot import (
    RING,
    StartSlot,
    discard,
    read_slot,
    slot_path,
    slots_in,
)


def test_the_runs_begun_are_read_back_and_outlive_the_worker_s_clean_exit(tmp_path):
    slot = StartSlot(slot_path(tmp_path, "t" * 32, 123))
    assert read_slot(slot.path) == set()  # nothing begun yet
    slot.begin(99_999_999_999)
    slot.begin(7)
    slot.begin(7)  # its next step
    assert read_slot(slot.path) == {99_999_999_999, 7}
    assert slots_in(tmp_path) == [slot.path]
    slot.close()  # its last starts may not be committed yet: the daemon removes the slot
    assert read_slot(slot.path) == {99_999_999_999, 7}


def test_the_slot_remembers_the_last_ring_of_runs_begun(tmp_path):
    slot = StartSlot(slot_path(tmp_path, "t" * 32, 123))
    for run_id in range(1, RING + 11):
        slot.begin(run_id * 1000)  # every length of id overwrites a shorter or longer one
    assert read_slot(slot.path) == {run_id * 1000 for run_id in range(11, RING + 11)}


def test_a_slot_left_by_an_earlier_worker_with_the_same_pid_starts_empty(tmp_path):
    path = slot_path(tmp_path, "t" * 32, 123)
    StartSlot(path).begin(5)  # killed: never closed
    assert read_slot(path) == {5}
    assert read_slot(StartSlot(path).path) == set()


def test_a_slot_that_is_a_link_or_garbage_names_no_run(tmp_path):
    target = tmp_path / "elsewhere"
    target.write_text("5\n")
    os.symlink(target, tmp_path / "linked")
    (tmp_path / "garbage").write_text("rm -rf /\n")
    assert read_slot(tmp_path / "linked") == set()
    assert read_slot(tmp_path / "garbage") == set()
    assert read_slot(tmp_path / "missing") == set()
    discard([tmp_path / "garbage", tmp_path / "missing"])
    assert not (tmp_path / "garbage").exists()
