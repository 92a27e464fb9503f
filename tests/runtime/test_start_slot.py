"""A worker's start slot: the run whose call step it last began."""

import os

from easyflow_cli.runtime.start_slot import StartSlot, discard, read_slot, slot_path, slots_in


def test_the_last_run_begun_is_read_back_and_a_clean_exit_removes_the_slot(tmp_path):
    slot = StartSlot(slot_path(tmp_path, "t" * 32, 123))
    assert read_slot(slot.path) is None  # nothing begun yet
    slot.begin(99_999_999_999)
    slot.begin(7)  # shorter: the old digits must not show through
    assert read_slot(slot.path) == 7
    assert slots_in(tmp_path) == [slot.path]
    slot.close()
    assert slots_in(tmp_path) == []


def test_a_slot_that_is_a_link_or_garbage_names_no_run(tmp_path):
    target = tmp_path / "elsewhere"
    target.write_text("5\n")
    os.symlink(target, tmp_path / "linked")
    (tmp_path / "garbage").write_text("rm -rf /\n")
    assert read_slot(tmp_path / "linked") is None
    assert read_slot(tmp_path / "garbage") is None
    assert read_slot(tmp_path / "missing") is None
    discard([tmp_path / "garbage", tmp_path / "missing"])
    assert not (tmp_path / "garbage").exists()
