"""Three pools of worker processes, one per mode, each with its own size and priority.

A pool never runs more of its mode's runs at once than it has workers. Workers are started
ahead of time (warm), so a run starts without waiting for a process to boot; a worker that dies
is noticed through its pipe and replaced.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
from dataclasses import dataclass, field
from typing import Any

from easyflow_cli.config import PoolConfig
from easyflow_cli.model import Mode


@dataclass
class Assignment:
    """A run a worker holds: handed over (`started` False) or executing (`started` True)."""

    run_id: int
    started: bool = False
    pgid: int | None = None
    stop_reason: str | None = None


class WorkerProcess:
    """One worker: its process, its pipes and the runs it holds."""

    def __init__(self, pool: Pool, number: int) -> None:
        self.pool = pool
        self.name = f"{pool.mode.value}-{number}"
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "easyflow_cli.worker", "--nice", str(pool.config.nice),
             "--parent", str(os.getpid())],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, close_fds=True,
        )
        self.stdout_fd = self.proc.stdout.fileno()
        os.set_blocking(self.stdout_fd, False)
        self.buffer = b""
        self.assignments: dict[int, Assignment] = {}
        self.retiring = False
        self.ready = False  # it has booted and said so: a run handed to it starts at once

    @property
    def pid(self) -> int:
        return self.proc.pid

    @property
    def idle(self) -> bool:
        return not self.assignments and not self.retiring

    def send(self, message: dict[str, Any]) -> bool:
        try:
            self.proc.stdin.write(json.dumps(message).encode() + b"\n")
            self.proc.stdin.flush()
            return True
        except (OSError, ValueError):  # ValueError: the pipe was already closed
            return False

    def assign(self, orders: list[dict[str, Any]]) -> bool:
        for order in orders:
            self.assignments[order["id"]] = Assignment(order["id"])
        return self.send({"op": "run", "runs": orders})

    def read_events(self) -> tuple[list[dict[str, Any]], bool]:
        """Events the worker has written so far, and whether its pipe reached end of file."""
        eof = False
        try:
            while True:
                data = os.read(self.stdout_fd, 65536)
                if not data:
                    eof = True
                    break
                self.buffer += data
        except BlockingIOError:
            pass
        *lines, self.buffer = self.buffer.split(b"\n")
        return [json.loads(line) for line in lines if line.strip()], eof

    def retire(self) -> None:
        """Finish what it holds, then exit.

        A message rather than closing stdin: the pipe must stay open so a run it is still
        executing can be cancelled (a drain past its grace does exactly that).
        """
        self.retiring = True
        if not self.send({"op": "retire"}):
            with contextlib.suppress(OSError, ValueError):
                self.proc.stdin.close()

    def reap(self) -> int | None:
        """The worker's exit status once it has exited (non-blocking)."""
        return self.proc.poll()


@dataclass
class Pool:
    mode: Mode
    config: PoolConfig
    workers: list[WorkerProcess] = field(default_factory=list)
    started: int = 0

    def fill(self) -> list[WorkerProcess]:
        """Start workers until the pool has its configured size; returns the new ones."""
        new = []
        # Retiring workers still count: they may be finishing a run, and the pool's size is a
        # promise about how many of its runs execute at once.
        while len(self.workers) < self.config.workers:
            self.started += 1
            worker = WorkerProcess(self, self.started)
            self.workers.append(worker)
            new.append(worker)
        return new

    def shrink(self) -> None:
        """After a reload made the pool smaller: retire idle workers first, then busy ones."""
        active = [w for w in self.workers if not w.retiring]
        excess = len(active) - self.config.workers
        for worker in sorted(active, key=lambda w: not w.idle)[:max(0, excess)]:
            worker.retire()

    def idle_workers(self) -> list[WorkerProcess]:
        return [w for w in self.workers if w.idle]

    @property
    def ready(self) -> int:
        return sum(1 for w in self.workers if w.ready)

    @property
    def busy(self) -> int:
        return sum(1 for w in self.workers if w.assignments)

    def remove(self, worker: WorkerProcess) -> None:
        self.workers.remove(worker)
