"""How fast a command step starts, as its user sees it, and what this box allows at best.

- A command step's first instruction: the step is `date +%s.%N`, whose first output is its own
  reading of CLOCK_REALTIME; the latency runs from the start of the submitting transaction (the
  bench's wall clock, the same clock) to that reading. `date`'s own start cost (exec, dynamic
  loading, locale set-up) is in it, and measured apart: `date` spawned straight from the bench,
  from just before the spawn to its reading.
- The spawn ceiling: two loops of posix_spawn + wait of /bin/true, one process each, side by
  side; runs/s in all. No one-process-per-run design drains faster on this box.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time

from easyflow_cli.core.paths import run_log_path
from easyflow_cli.tools.bench_daemon import BenchDaemon, BenchError

CLOCK_COMMAND = ["date", "+%s.%N"]
CEILING_LOOPS = 2
CEILING_LOOP = """
import os, sys, time
devnull = os.open(os.devnull, os.O_WRONLY)
actions = [(os.POSIX_SPAWN_DUP2, devnull, 1)]
count, until = 0, time.monotonic() + float(sys.argv[1])
while time.monotonic() < until:
    os.waitpid(os.posix_spawn("/bin/true", ["/bin/true"], {}, file_actions=actions), 0)
    count += 1
print(count)
"""


def command_first_instruction(daemon: BenchDaemon, samples: int) -> list[float]:
    """Milliseconds from submission to the clock command's own reading, one real-time run at
    a time."""
    latencies = []
    for _ in range(samples):
        ids, _, submitted_wall = daemon.submit("bench-clock")
        if not daemon.wait_finished(ids, timeout=30):
            raise BenchError(f"run {ids[0]} did not finish within 30 s")
        latencies.append((_reading(daemon, ids[0]) - submitted_wall) * 1000)
    return latencies


def _reading(daemon: BenchDaemon, run_id: int) -> float:
    for line in run_log_path(daemon.home, run_id).read_text().splitlines():
        if not line.startswith("[easyflow]"):
            return float(line)
    raise BenchError(f"run {run_id} printed no clock reading")


def clock_command_own_start(samples: int) -> list[float]:
    """Milliseconds from just before a spawn of the clock command to its own reading."""
    costs = []
    for _ in range(samples):
        read_end, write_end = os.pipe()
        before = time.time()
        pid = os.posix_spawnp(CLOCK_COMMAND[0], CLOCK_COMMAND, os.environ,
                              file_actions=[(os.POSIX_SPAWN_DUP2, write_end, 1)])
        os.close(write_end)
        with os.fdopen(read_end, "rb") as output:
            reading = float(output.read())
        os.waitpid(pid, 0)
        costs.append((reading - before) * 1000)
    return costs


def spawn_ceiling(seconds: float) -> float:
    """Runs/s of CEILING_LOOPS posix_spawn loops of /bin/true running side by side."""
    loops = [subprocess.Popen([sys.executable, "-c", CEILING_LOOP, str(seconds)],
                              stdout=subprocess.PIPE, text=True) for _ in range(CEILING_LOOPS)]
    counts = [int(loop.communicate()[0]) for loop in loops]
    return round(sum(counts) / seconds, 1)
