"""A run's processes in a cgroup v2 of their own, where the daemon has one delegated.

The test delegates a cgroup the way systemd does for `Delegate=yes` (a child cgroup marked
`trusted.delegate`) and starts the daemon in it; it runs as root on a box with a writable
cgroup v2 hierarchy and is skipped elsewhere. The steps' escapees here clear their whole
environment (`env -i`): the mark cannot find them, only the cgroup can.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

pytest_plugins = ["tests.daemon_harness"]
pytest.register_assert_rewrite("tests.daemon_harness")
from easyflow_cli.runtime import run_cgroup  # noqa: E402
from tests.conftest import easyflow_command  # noqa: E402
from tests.daemon_harness import DaemonHarness, wait_for  # noqa: E402

pytestmark = pytest.mark.e2e

ESCAPING_STEP = "env -i setsid sleep 300 & env -i sh -c '(sleep 300 &)'; sleep 300"


@pytest.fixture
def delegated() -> Iterator[Path]:
    if os.geteuid() != 0:
        pytest.skip("delegating a cgroup to the test's daemon needs root")
    mount, own = run_cgroup._cgroup2_mount(), run_cgroup._own_cgroup()
    if mount is None or own is None:
        pytest.skip("no cgroup v2 hierarchy on this box")
    group = mount / own.lstrip("/") / f"easyflow-test-{uuid.uuid4().hex[:12]}"
    try:
        group.mkdir()
        os.setxattr(group, "trusted.delegate", b"1")
    except OSError as exc:
        with contextlib.suppress(OSError):
            group.rmdir()
        pytest.skip(f"cannot delegate a cgroup here: {exc}")
    yield group
    for child in [*group.glob("*/"), group]:
        if child.is_dir():
            with contextlib.suppress(OSError):
                run_cgroup.kill(child)
            run_cgroup.remove(child)


def launch_in(daemon: DaemonHarness, group: Path) -> None:
    """`easyflow daemon` started inside `group`, as systemd starts a service in its cgroup."""
    procs = group / "cgroup.procs"
    with open(daemon.log_path, "ab") as log:
        daemon.proc = subprocess.Popen(
            [*easyflow_command(), "daemon"], env=daemon.env(), stdin=subprocess.DEVNULL,
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
            preexec_fn=lambda: procs.write_text(str(os.getpid())))
    daemon.wait_answering()


def members(group: Path) -> set[int]:
    return set(run_cgroup._members(group)) if group.exists() else set()


def running_run(daemon: DaemonHarness, group: Path) -> tuple[int, Path, set[int]]:
    """Submit the escaping workflow; its id, its cgroup and the processes in it once all three
    sleeps run."""
    run_id = daemon.submit("escaper")["id"]
    daemon.wait_until_started(run_id)
    [run_group] = wait_for(lambda: list(group.glob(f"run-{run_id}.*")),
                           message="the run's cgroup")
    pids = wait_for(lambda: (found := members(run_group)) and len(found) >= 3 and found,
                    message="the step and its two escapees in the run's cgroup")
    return run_id, run_group, pids


def gone(pids: set[int]) -> bool:
    return not any(Path(f"/proc/{pid}").exists() and b"Z" not in _state(pid) for pid in pids)


def _state(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/stat").read_bytes().rsplit(b") ", 1)[1][:1]
    except OSError:
        return b"Z"


def test_a_run_s_cgroup_is_killed_after_a_worker_or_a_daemon_kill_9(daemon, delegated):
    daemon.add_workflow("escaper", ["sh", "-c", ESCAPING_STEP])
    launch_in(daemon, delegated)
    assert "contained by cgroup v2" in daemon.log_text()

    run_id, run_group, pids = running_run(daemon, delegated)
    worker = daemon.peek_runs()[-1]["pid"]
    os.kill(worker, signal.SIGKILL)
    daemon.wait_for_state(run_id, "failed")
    wait_for(lambda: gone(pids), message="the run's processes, escapees included, to be gone")
    wait_for(lambda: not run_group.exists(), message="the run's cgroup to be removed")

    run_id, run_group, pids = running_run(daemon, delegated)
    daemon.proc.send_signal(signal.SIGKILL)
    daemon.proc.wait(10)
    launch_in(daemon, delegated)  # its recovery kills the cgroup of the run it settles
    daemon.wait_for_state(run_id, "failed")
    wait_for(lambda: gone(pids), message="the run's processes to be gone after recovery")
    daemon.stop()
