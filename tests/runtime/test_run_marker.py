"""Finding and killing a run's processes by the mark in their environment."""

import os
import subprocess
import sys
import time

import pytest

from easyflow_cli.runtime.run_marker import (
    RUN_VARIABLE,
    TOKEN_VARIABLE,
    kill_marked,
    kill_session,
    marked_pids,
    marker_env,
    new_token,
    session_of,
)

TOKEN = new_token()


def marked(run_id: int, token: str = TOKEN, **popen) -> subprocess.Popen:
    """A process in a session of its own (as a `setsid` escapee is) carrying a run's mark."""
    return subprocess.Popen(["sleep", "60"], env={"PATH": os.defpath, **marker_env(run_id, token)},
                            start_new_session=True, **popen)


@pytest.fixture
def procs():
    started: list[subprocess.Popen] = []
    yield started
    for proc in started:
        proc.kill()
        proc.wait()


def test_every_process_with_the_mark_is_killed_and_no_other(procs):
    ours = [marked(7), marked(7)]
    other_run, other_token = marked(8), marked(7, new_token())
    procs += [*ours, other_run, other_token]
    assert marked_pids([7], [TOKEN]) == {proc.pid for proc in ours}
    assert kill_marked([7], [TOKEN]) == 2
    assert [proc.wait(timeout=5) for proc in ours] == [-9, -9]
    assert other_run.poll() is None and other_token.poll() is None


def test_a_double_forked_grandchild_is_found_by_its_mark():
    env = {"PATH": os.defpath, **marker_env(9, TOKEN)}
    subprocess.run(["sh", "-c", "(sleep 60 &)"], env=env, check=True)
    [grandchild] = marked_pids([9], [TOKEN])
    assert kill_marked([9], [TOKEN]) == 1
    deadline = time.monotonic() + 5
    while grandchild in marked_pids([9], [TOKEN]) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert not marked_pids([9], [TOKEN])


def test_the_process_scanning_is_never_killed_even_with_the_mark():
    script = ("import sys; from easyflow_cli.runtime.run_marker import kill_marked; "
              f"kill_marked([5], [{TOKEN!r}]); print('alive')")
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                            env={**os.environ, **marker_env(5, TOKEN)}, timeout=30)
    assert result.stdout == "alive\n"


@pytest.mark.skipif(os.geteuid() != 0, reason="only root can start a process as another user")
def test_a_process_of_another_user_is_never_killed(procs):
    stranger = marked(6, user=65534, group=65534)
    procs.append(stranger)  # Popen returns once it has exec'd as that user
    assert kill_marked([6], [TOKEN]) == 0
    assert stranger.poll() is None


def test_no_mark_no_kill():
    assert kill_marked([], [TOKEN]) == 0 and kill_marked([1], []) == 0
    assert marker_env(None, None) == {}
    assert marker_env(3, "t") == {RUN_VARIABLE: "3", TOKEN_VARIABLE: "t"}


def test_a_dead_leader_s_session_is_killed_and_no_other(procs, tmp_path):
    """What a dead worker spawned stays in its session, with or without a mark; the leader is
    held unreaped, so its pid still names that session."""
    pids = tmp_path / "pids"
    leader = subprocess.Popen(
        ["sh", "-c", f"sleep 60 & echo $! > {pids}; (sleep 60 &); exec sleep 60"],
        env={"PATH": os.defpath}, start_new_session=True)
    procs += [leader, marked(7)]
    deadline, members = time.monotonic() + 10, set()
    while len(members) < 3 and time.monotonic() < deadline:  # a read of /proc that saw all 3
        time.sleep(0.02)
        members = _session_members(leader.pid)
    os.kill(leader.pid, 9)
    os.waitid(os.P_PID, leader.pid, os.WEXITED | os.WNOWAIT)
    assert kill_session(leader.pid) == len(members) - 1 == 2
    assert _session_members(leader.pid) == set()
    assert procs[1].poll() is None  # another session


def _session_members(session: int) -> set[int]:
    return {int(p) for p in os.listdir("/proc") if p.isdigit() and session_of(int(p)) == session}
