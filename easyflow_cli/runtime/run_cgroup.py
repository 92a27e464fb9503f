"""A cgroup v2 per run, where the daemon has a cgroup delegated to it.

systemd delegates a service's cgroup with `Delegate=yes` (the units under systemd/ say so) and
marks it with the `trusted.delegate` (or, under a user manager, `user.delegate`) attribute.
Below it each run gets `run-ID.TOKEN`; every command step's process begins in it (spawned by
its worker from inside it, or joined while parked), before its program runs, and nothing it
starts can leave it by `setsid` or a double fork.
Writing 1 to `cgroup.kill` then kills everything in it at once, in one system call (older
kernels without that file get each pid in `cgroup.procs` killed).

Without a delegated cgroup (not under systemd, or a unit without `Delegate=yes`) the runs'
processes are found by their mark instead (run_marker.py). `detect` says which, and why.
"""

from __future__ import annotations

import contextlib
import errno
import os
import signal
import time
from collections.abc import Collection
from pathlib import Path

CGROUP_VARIABLE = "EASYFLOW_CGROUP"
DELEGATE_ATTRIBUTES = ("trusted.delegate", "user.delegate")
PROC_CGROUP = Path("/proc/self/cgroup")
PROC_MOUNTINFO = Path("/proc/self/mountinfo")
# A killed cgroup empties as its processes exit: a moment, not a wait worth making longer.
REMOVE_TRIES = 50
PASSES = 20


def detect() -> tuple[Path | None, str]:
    """This process's own cgroup v2 directory if it was delegated to us, and a sentence on
    what was found."""
    mount = _cgroup2_mount()
    own = _own_cgroup()
    if mount is None or own is None:
        return None, "no cgroup v2 hierarchy"
    directory = mount / own.lstrip("/")
    if not _delegated(directory):
        return None, f"cgroup {own} is not delegated to this process (Delegate=yes)"
    if not os.access(directory, os.W_OK) or not os.access(directory / "cgroup.procs", os.W_OK):
        return None, f"cgroup {own} is delegated but not writable"
    return directory, f"cgroup v2, a child of {directory} per run"


def path_of(base: Path, run_id: int, token: str) -> Path:
    return base / f"run-{run_id}.{token}"


def join(group: Path, pid: int) -> None:
    """Put a (parked) process into its run's cgroup, made on first use."""
    with contextlib.suppress(FileExistsError):
        group.mkdir(mode=0o755)
    (group / "cgroup.procs").write_text(str(pid))


def leave(group: Path) -> None:
    """Back in the delegated cgroup, out of a run's that this process joined to spawn a step
    in it (posix_spawn cannot place a child in a cgroup: it begins in its parent's)."""
    (group.parent / "cgroup.procs").write_text(str(os.getpid()))


def kill(group: Path) -> bool:
    """SIGKILL everything in the cgroup; False when there is no such cgroup."""
    try:
        (group / "cgroup.kill").write_text("1")
        return True
    except FileNotFoundError:
        if not group.exists():
            return False
    for _ in range(PASSES):  # a kernel without cgroup.kill: the pids one by one
        pids = _members(group)
        if not pids:
            break
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
    return True


def remove(group: Path) -> None:
    """Kill what is left in a run's cgroup and remove it (left for the next start's `prune`
    if its processes are slow to go)."""
    for attempt in range(REMOVE_TRIES):
        try:
            group.rmdir()
            return
        except FileNotFoundError:
            return
        except OSError as exc:
            if exc.errno != errno.EBUSY:
                return
        if attempt == 0:
            kill(group)
        time.sleep(0.01)


def kill_runs(base: Path, run_ids: Collection[int], tokens: Collection[str]) -> int:
    """Kill the cgroups of these runs (under any of the tokens); how many there were."""
    killed = 0
    for run_id in run_ids:
        for token in tokens:
            group = path_of(base, run_id, token)
            if kill(group):
                killed += 1
                remove(group)
    return killed


def prune(base: Path) -> None:
    """Remove the empty run cgroups a killed worker or daemon left."""
    for group in base.glob("run-*"):
        with contextlib.suppress(OSError):
            group.rmdir()


def _members(group: Path) -> list[int]:
    try:
        return [int(pid) for pid in (group / "cgroup.procs").read_text().split()]
    except OSError:
        return []


def _delegated(directory: Path) -> bool:
    for attribute in DELEGATE_ATTRIBUTES:
        with contextlib.suppress(OSError):
            if os.getxattr(directory, attribute) == b"1":
                return True
    return False


def _own_cgroup() -> str | None:
    with contextlib.suppress(OSError):
        for line in PROC_CGROUP.read_text().splitlines():
            if line.startswith("0::"):
                return line[3:]
    return None


def _cgroup2_mount() -> Path | None:
    with contextlib.suppress(OSError):
        for line in PROC_MOUNTINFO.read_text().splitlines():
            fields = line.split(" - ")
            if len(fields) == 2 and fields[1].split()[0] == "cgroup2":
                return Path(fields[0].split()[4])
    return None
