"""Detecting a delegated cgroup v2, and a run's cgroup on a fake hierarchy (the real one is
tests/e2e/test_run_cgroup.py)."""

import os
from pathlib import Path

import pytest

from easyflow_cli.runtime import run_cgroup


@pytest.fixture
def hierarchy(tmp_path, monkeypatch) -> Path:
    """A cgroup2 'mount' in tmp_path, with this process in /svc."""
    mount = tmp_path / "cgroup"
    (mount / "svc").mkdir(parents=True)
    (mount / "svc" / "cgroup.procs").touch()
    mountinfo = tmp_path / "mountinfo"
    mountinfo.write_text(f"22 1 0:20 / /proc rw - proc proc rw\n"
                         f"41 31 0:38 / {mount} rw,relatime - cgroup2 cgroup2 rw\n")
    cgroup = tmp_path / "cgroup-of-self"
    cgroup.write_text("4:memory:/x\n0::/svc\n")
    monkeypatch.setattr(run_cgroup, "PROC_MOUNTINFO", mountinfo)
    monkeypatch.setattr(run_cgroup, "PROC_CGROUP", cgroup)
    return mount


def test_a_cgroup_not_marked_delegated_is_not_used(hierarchy):
    found, how = run_cgroup.detect()
    assert found is None and "not delegated" in how and "/svc" in how


def test_a_cgroup_systemd_marked_delegated_is_used(hierarchy):
    os.setxattr(hierarchy / "svc", "user.delegate", b"1")
    found, how = run_cgroup.detect()
    assert found == hierarchy / "svc" and "cgroup v2" in how


def test_no_cgroup2_mount_no_cgroup(hierarchy, tmp_path, monkeypatch):
    (tmp_path / "mountinfo").write_text("22 1 0:20 / /proc rw - proc proc rw\n")
    assert run_cgroup.detect() == (None, "no cgroup v2 hierarchy")


def test_a_run_s_cgroup_is_named_by_its_id_and_token_and_pruned_when_empty(hierarchy):
    base = hierarchy / "svc"
    group = run_cgroup.path_of(base, 12, "ab" * 16)
    assert group.name == f"run-12.{'ab' * 16}"
    group.mkdir()
    (base / "unrelated").mkdir()
    run_cgroup.prune(base)
    assert not group.exists() and (base / "unrelated").exists()
    assert not run_cgroup.kill(group)  # no such cgroup: nothing to kill
