"""Which process a recorded process group is: its leader's start time and the boot it began in.

A pid names a process only while it lives: once it exits, or the machine reboots, the same
number may name a stranger. The leader's start time (clock ticks since boot, field 22 of
/proc/PID/stat) and the boot's random id name it for good.
"""

from __future__ import annotations

import functools
import os
from pathlib import Path

from easyflow_cli.core.model import StepGroup

BOOT_ID_PATH = Path("/proc/sys/kernel/random/boot_id")
STARTTIME_FIELD = 22


@functools.cache
def boot_id() -> str | None:
    try:
        return BOOT_ID_PATH.read_text().strip()
    except OSError:
        return None


def start_ticks(pid: int) -> int | None:
    """When the process began, in clock ticks since boot; None when it is gone."""
    # os.open and os.read, not Path.read_bytes (twice as slow): the daemon reads this for
    # every step it records.
    try:
        fd = os.open(f"/proc/{pid}/stat", os.O_RDONLY)
    except OSError:
        return None
    try:
        stat = os.read(fd, 4096)
    except OSError:  # it exited between the open and the read
        return None
    finally:
        os.close(fd)
    # The command name (field 2) may hold spaces and parentheses: count from its last ')'.
    after_name = stat[stat.rindex(b")") + 2:].split()
    return int(after_name[STARTTIME_FIELD - 3])


def group_of(pgid: int) -> StepGroup:
    """A step's process group as recorded while its leader is parked (alive)."""
    return StepGroup(pgid, start_ticks(pgid), boot_id())


def is_still_ours(group: StepGroup) -> bool:
    """May this recorded group be killed? Only in the boot it was recorded in, and only while
    its pgid names the leader recorded or no process at all: a pid stays taken as long as a
    group uses it as its id, so a group whose leader exited is still the one recorded."""
    if group.leader_start is None or group.boot_id is None or group.boot_id != boot_id():
        return False
    now = start_ticks(group.pgid)
    return now is None or now == group.leader_start
