"""A pool worker process: executes the runs the daemon hands it, one after another.

It never touches the database. The daemon writes JSON lines to its stdin:
    {"op": "run", "runs": [{"id", "spec", "source_file", "log_path", "limits"}, ...]}
    {"op": "cancel", "id": RUN_ID}
    {"op": "retire"}: finish what you hold, then exit
and reads JSON lines from its stdout:
    {"ev": "ready", "pid"}
    {"ev": "started", "id", "at"} / {"ev": "step", "id", "pgid"} / {"ev": "finished", "id", "at",
    "outcome": {...}}
End of stdin means the same as retire.
"""

from __future__ import annotations

import argparse
import json
import os
import select
import signal
import sys
from typing import Any

from easyflow_cli.executor import (
    RunLimits,
    become_subreaper,
    die_with_parent,
    execute_workflow,
    lower_priority,
)
from easyflow_cli.model import RunState
from easyflow_cli.queue import Outcome
from easyflow_cli.rapl import EnergyMeter
from easyflow_cli.spec import WorkflowSpec, spec_from_dict
from easyflow_cli.timeutil import to_iso, utcnow

SPEC_CACHE_SIZE = 64


class Worker:
    """Reads orders from the daemon, runs them, reports back. One run at a time."""

    def __init__(self, inbox: int, outbox) -> None:
        self.inbox = inbox
        self.outbox = outbox
        self.buffer = b""
        self.pending: list[dict[str, Any]] = []
        self.cancelled: set[int] = set()
        self.closed = False  # stdin reached end of file
        self.retiring = False
        self.meter = EnergyMeter()
        self.specs: dict[tuple, WorkflowSpec] = {}

    def report(self, **event: Any) -> None:
        self.outbox.write(json.dumps(event) + "\n")
        self.outbox.flush()

    def read_orders(self, timeout: float | None) -> None:
        """Take whatever the daemon has sent; wait up to `timeout` for something to arrive."""
        if self.closed:
            return
        ready, _, _ = select.select([self.inbox], [], [], timeout)
        if not ready:
            return
        data = os.read(self.inbox, 65536)
        if not data:
            self.closed = True
            return
        self.buffer += data
        *lines, self.buffer = self.buffer.split(b"\n")
        for line in lines:
            if line.strip():
                self._take(json.loads(line))

    def _take(self, order: dict[str, Any]) -> None:
        if order["op"] == "run":
            self.pending.extend(order["runs"])
        elif order["op"] == "cancel":
            self.cancelled.add(order["id"])
        elif order["op"] == "retire":
            self.retiring = True

    def is_cancelled(self, run_id: int) -> bool:
        self.read_orders(0)
        return run_id in self.cancelled

    def serve(self) -> None:
        self.report(ev="ready", pid=os.getpid())
        while not ((self.closed or self.retiring) and not self.pending):
            if not self.pending:
                self.read_orders(None)
                continue
            self.execute(self.pending.pop(0))

    def execute(self, order: dict[str, Any]) -> None:
        run_id = order["id"]
        if run_id in self.cancelled:
            self.report(ev="finished", id=run_id, at=to_iso(utcnow()),
                        outcome=_as_dict(Outcome(RunState.CANCELLED, error="cancelled")))
            return
        spec = self.spec_of(order)
        limits = RunLimits(**order["limits"])
        self.report(ev="started", id=run_id, at=to_iso(utcnow()))
        fd = os.open(order["log_path"], os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        with open(fd, "ab") as log:
            outcome = execute_workflow(
                spec, limits, log, cancelled=lambda: self.is_cancelled(run_id),
                on_step_start=lambda step, pid: self.report(ev="step", id=run_id, pgid=pid),
                meter=self.meter,
            )
        self.report(ev="finished", id=run_id, at=to_iso(utcnow()), outcome=_as_dict(outcome))

    def spec_of(self, order: dict[str, Any]) -> WorkflowSpec:
        """The order's spec, validated once per distinct spec (a pool runs the same few)."""
        key = (order.get("source_file"), json.dumps(order["spec"], sort_keys=True))
        spec = self.specs.get(key)
        if spec is None:
            if len(self.specs) >= SPEC_CACHE_SIZE:
                self.specs.clear()
            spec = self.specs[key] = spec_from_dict(order["spec"], source_file=key[0])
        return spec


def _as_dict(outcome: Outcome) -> dict[str, Any]:
    # Outcome is flat: a copy of its fields is what dataclasses.asdict gives, without the
    # deep copy that was a sixth of a no-op run's cost in the worker.
    return dict(vars(outcome))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="easyflow-worker")
    parser.add_argument("--nice", type=int, default=0)
    args = parser.parse_args(argv)
    # The daemon owns shutdown: a terminal's Ctrl-C must not kill runs behind its back, and
    # if the daemon dies we die with it instead of running on unsupervised.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    die_with_parent()
    if os.getppid() == 1:
        sys.exit(0)
    become_subreaper()
    lower_priority(args.nice)
    Worker(sys.stdin.fileno(), _protocol_stream()).serve()


def _protocol_stream():
    """The pipe to the daemon, moved off fd 1: a callable step runs in this process, and what
    it (or a program it starts) writes to fd 1 must not land in the protocol."""
    stream = os.fdopen(os.dup(sys.stdout.fileno()), "w")
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)
    return stream


if __name__ == "__main__":
    main()
