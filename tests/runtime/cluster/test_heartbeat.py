"""Which pool processes of a worker still hold their runs: live children, not zombies."""

import os
import subprocess
import sys

from easyflow_cli.runtime.cluster.heartbeat import is_live_child


def test_a_child_is_live_until_it_exits_even_before_it_is_reaped():
    child = subprocess.Popen([sys.executable, "-c", "import sys; sys.stdin.read()"],
                             stdin=subprocess.PIPE)
    assert is_live_child(child.pid)
    child.stdin.close()
    os.waitid(os.P_PID, child.pid, os.WEXITED | os.WNOWAIT)  # exited, left a zombie
    assert not is_live_child(child.pid)
    child.wait()
    assert not is_live_child(child.pid)


def test_a_process_that_is_not_our_child_holds_nothing():
    assert not is_live_child(os.getppid())
    assert not is_live_child(os.getpid())
