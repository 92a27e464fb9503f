"""A pool worker process: executes the runs the daemon hands it, one after another.

It never touches the database. The daemon writes orders to its stdin (run, cancel, release,
retire; moved off fd 0 at start) and reads reports from its stdout (ready, started, step,
finished, ran, released): JSON lines, each a message of runtime/protocol.py, which says what
each one means. End of stdin means the same as retire. The daemon's token, which marks every
process of the runs it executes (run_marker.py), its delegated cgroup, if it has one
(run_cgroup.py), and where the worker notes the runs whose steps it begins (start_slot.py) come
in its environment.

A command step is spawned at once, with no round trip to the daemon: the run is noted in the
start slot first (so a crash counts it as started and never runs it again), and its process
group goes with the next reports if it still runs when they leave: a step that ended before
has left nothing to find, and is not reported at all (nor its leader's start time read), which
spares the daemon a write for each short step. What a crash leaves is found without these
reports: by the run's mark, its cgroup, and this worker's session, which the daemon started it
in and which everything it spawns stays in until it leaves by `setsid` (pools.py).

"started" and "finished" reports of short runs are sent together, a few at a time: each write
wakes the daemon, which costs more than a no-op run itself. They leave at the latest when the
worker has nothing more to run, when its oldest unsent report is FLUSH_AFTER_S old (checked
between runs), or when a running step is first checked for cancellation (early, see calls.py
and executor.py). A step that has ended sends nothing: its run's end is next, and goes with its
start in one "ran" report.
"""

from __future__ import annotations

import argparse
import errno
import io
import json
import os
import select
import signal
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, cast

from easyflow_cli.core.model import Outcome, RunState
from easyflow_cli.core.spec import WorkflowSpec, spec_from_dict
from easyflow_cli.core.trust import UntrustedPath, create_or_reopen
from easyflow_cli.runtime import calls, run_cgroup
from easyflow_cli.runtime.executor import execute_workflow
from easyflow_cli.runtime.process_identity import start_ticks
from easyflow_cli.runtime.processes import become_subreaper, die_with_parent, lower_priority
from easyflow_cli.runtime.protocol import (
    CancelOrder,
    Finished,
    Order,
    ProtocolError,
    Ran,
    Ready,
    Released,
    ReleaseOrder,
    Report,
    RetireOrder,
    RunLimits,
    RunOrder,
    SpecEntry,
    Started,
    Step,
    decode_order,
    encode_all,
)
from easyflow_cli.runtime.rapl import EnergyMeter
from easyflow_cli.runtime.run_cgroup import CGROUP_VARIABLE
from easyflow_cli.runtime.run_marker import TOKEN_VARIABLE
from easyflow_cli.runtime.start_slot import SLOTS_VARIABLE, StartSlot, slot_path

SPEC_CACHE_SIZE = 64
FLUSH_AFTER_S = 0.001


@dataclass
class Job:
    """One run to execute, as the daemon handed it over."""

    run_id: int
    spec: WorkflowSpec
    limits: RunLimits
    log_path: str


class Worker:
    """Reads orders from the daemon, runs them, reports back. One run at a time."""

    def __init__(self, inbox: int, outbox: int) -> None:
        self.inbox = inbox
        self.outbox = outbox
        self.buffer = b""
        self.pending: list[Job] = []
        self.cancelled: set[int] = set()
        self.token = os.environ.get(TOKEN_VARIABLE)
        base = os.environ.get(CGROUP_VARIABLE)
        self.cgroup_base = Path(base) if base else None
        self.slot = _own_slot(self.token)
        self.closed = False  # stdin reached end of file
        self.retiring = False
        self.meter = EnergyMeter()
        self.specs: dict[tuple[str | None, str], WorkflowSpec] = {}
        self.unsent: list[Report] = []
        self.unsent_since = 0.0  # monotonic time of the oldest unsent report
        self.unsent_step: Step | None = None  # the running step's report, while unsent
        self.after_command = False  # a command step ended, and no step has begun since

    def report(self, event: Report) -> None:
        """Send this report, and any held back before it, now."""
        self.unsent.append(event)
        self.flush()

    def report_soon(self, event: Report) -> None:
        if not self.unsent:
            self.unsent_since = time.monotonic()
        self.unsent.append(event)

    def report_end(self, start: Started, at: float, outcome: Outcome) -> None:
        """A run's end; sent with its start as one "ran" report if the start is still held
        (after its steps' reports, which the daemon reads while the run is still its own)."""
        held = _position(self.unsent, start)
        if held is None:
            self.report_soon(Finished(start.id, at, outcome))
            return
        del self.unsent[held]
        self.report_soon(Ran(start.id, start.at, at, outcome))

    def flush_if_stale(self) -> None:
        """Send what was held back once the oldest of it is FLUSH_AFTER_S old."""
        if self.unsent and time.monotonic() - self.unsent_since >= FLUSH_AFTER_S:
            self.flush()

    def flush(self) -> None:
        # A raw write, no buffered stream: this also runs in the SIGALRM handler that checks a
        # running call for cancellation (see calls.py), never while the main code flushes.
        if not self.unsent:
            return
        if self.unsent_step is not None:  # it runs (not reaped): its leader is who it was
            self.unsent_step.leader_start = start_ticks(self.unsent_step.pgid)
            self.unsent_step = None
        data = encode_all(self.unsent)
        self.unsent.clear()
        try:
            while data:
                data = data[os.write(self.outbox, data):]
        except BrokenPipeError:
            # The daemon is gone: a dying process closes its files just before its children
            # get their parent-death signal. Leave quietly; our step dies with us.
            os._exit(1)

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
                self._take(decode_order(line))

    def _take(self, order: Order) -> None:
        if isinstance(order, RunOrder):
            self.pending.extend(self.jobs_in(order))
        elif isinstance(order, ReleaseOrder):
            self.release_pending()
        elif isinstance(order, CancelOrder):
            self.cancelled.add(order.id)
        elif isinstance(order, RetireOrder):
            self.retiring = True

    def jobs_in(self, order: RunOrder) -> list[Job]:
        specs = {name: self.spec_of(entry) for name, entry in order.specs.items()}
        return [Job(run.id, specs[run.workflow], order.limits, run.log_path)
                for run in order.runs]

    def release_pending(self) -> None:
        """Hand back what has not started; a run being cancelled stays, to report its end."""
        kept = [job for job in self.pending if job.run_id in self.cancelled]
        released = [job.run_id for job in self.pending if job.run_id not in self.cancelled]
        self.pending = kept
        self.report(Released(released))

    def is_cancelled(self, run_id: int) -> bool:
        # Asked after every step too: then the run's end comes next, and goes with its start.
        if not self.after_command:
            self.flush_if_stale()
        self.read_orders(0)
        return run_id in self.cancelled

    def step_spawned(self, run_id: int, pgid: int) -> None:
        """A step's process group, reported with the next reports (it is not waited for), its
        leader's start time read as they leave."""
        self.unsent_step = Step(run_id, pgid)
        self.report_soon(self.unsent_step)

    def step_ended(self) -> None:
        """Nothing of the step's group is left: its report, if still unsent, has nothing to say."""
        self.after_command = True
        if self.unsent_step is not None:
            self.unsent.remove(self.unsent_step)
            self.unsent_step = None

    def serve(self) -> None:
        self.report(Ready(os.getpid()))
        while not ((self.closed or self.retiring) and not self.pending):
            if not self.pending:
                self.flush()
                self.read_orders(None)
                continue
            self.flush_if_stale()
            self.execute(self.pending.pop(0))
        self.flush()
        if self.slot is not None:
            self.slot.close()

    def execute(self, job: Job) -> None:
        run_id = job.run_id
        if run_id in self.cancelled:
            self.report_soon(Finished(run_id, time.time(),
                                      Outcome(RunState.CANCELLED, error="cancelled")))
            return
        start = Started(run_id, time.time())
        self.report_soon(start)
        cgroup = self.cgroup_of(run_id)
        with open_run_log(job.log_path) as log:
            outcome = execute_workflow(
                job.spec, job.limits, log, cancelled=lambda: self.is_cancelled(run_id),
                meter=self.meter, run_id=run_id, token=self.token, cgroup=cgroup,
                on_step_begin=lambda: self.note_step_begin(run_id),
                on_step_spawned=lambda pgid: self.step_spawned(run_id, pgid),
                on_step_ended=self.step_ended,
            )
        if cgroup is not None:
            run_cgroup.remove(cgroup)
        self.report_end(start, time.time(), outcome)

    def note_step_begin(self, run_id: int) -> None:
        self.after_command = False
        if self.slot is not None:
            self.slot.begin(run_id)

    def cgroup_of(self, run_id: int) -> Path | None:
        """The run's own cgroup, where the daemon has one delegated (run_cgroup.py)."""
        if self.cgroup_base is None or not self.token:
            return None
        return run_cgroup.path_of(self.cgroup_base, run_id, self.token)

    def spec_of(self, entry: SpecEntry) -> WorkflowSpec:
        """A handed-over spec, validated once per distinct spec (a pool runs the same few)."""
        key = (entry.source_file, json.dumps(entry.spec, sort_keys=True))
        spec = self.specs.get(key)
        if spec is None:
            if len(self.specs) >= SPEC_CACHE_SIZE:
                self.specs.clear()
            spec = self.specs[key] = spec_from_dict(entry.spec, source_file=key[0])
        return spec


def _position(reports: list[Report], report: Report) -> int | None:
    """Where `report` is among those held back, looked for from the end: a start is usually
    the last of them, or next to last behind its step's report."""
    for index in range(len(reports) - 1, -1, -1):
        if reports[index] is report:
            return index
    return None


class UnwritableLog(io.RawIOBase):
    """Stands in for a run log that could not be created: every write fails as the open did,
    so the run goes on and its outcome says `run log incomplete: ...`."""

    def __init__(self, error: OSError) -> None:
        super().__init__()
        self.error = error

    def writable(self) -> bool:
        return True

    def write(self, data: object) -> int:
        raise self.error


class RunLog(io.RawIOBase):
    """The run's log file, opened at its first write: a run that prints nothing leaves none
    (and costs no file creation, nor a block of the disk)."""

    def __init__(self, path: str) -> None:
        super().__init__()
        self.path = path
        self.file: BinaryIO | None = None

    def writable(self) -> bool:
        return True

    def write(self, data: object) -> int:
        """`data` appended; an empty write opens the file only if something is at its path
        already (an earlier attempt's log, or a link it must refuse: see `_open_log_file`)."""
        if self.file is None:
            if not data and not os.path.lexists(self.path):
                return 0
            self.file = _open_log_file(self.path)
        return self.file.write(cast(bytes, data))

    def close(self) -> None:
        if self.file is not None:
            self.file.close()
        super().close()


def open_run_log(path: str) -> BinaryIO:
    """The run's log file as CappedLog writes it, created at its first write."""
    return cast(BinaryIO, RunLog(path))


def _open_log_file(path: str) -> BinaryIO:
    """The run's log file, unbuffered so CappedLog sees each write's failure (disk full).

    Created exclusively and never through a link; a run re-queued after a restart appends to
    the log it began (`create_or_reopen`)."""
    try:
        fd = create_or_reopen(Path(path), os.O_WRONLY | os.O_APPEND)
    except (OSError, UntrustedPath) as exc:
        error = exc if isinstance(exc, OSError) else OSError(errno.EPERM, str(exc))
        print(f"easyflow {os.getpid()}: cannot open run log {path}: {error.strerror}; "
              "the run's output is discarded", file=sys.stderr, flush=True)
        return cast(BinaryIO, UnwritableLog(error))
    return open(fd, "ab", buffering=0)


def _own_slot(token: str | None) -> StartSlot | None:
    directory = os.environ.get(SLOTS_VARIABLE)
    if not directory or not token:
        return None
    return StartSlot(slot_path(Path(directory), token, os.getpid()))


def _parent_gone(expected: int | None) -> bool:
    parent = os.getppid()
    return parent == 1 or (expected is not None and parent != expected)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="easyflow-worker")
    parser.add_argument("--nice", type=int, default=0)
    parser.add_argument("--parent", type=int, default=None, help="the daemon's pid")
    args = parser.parse_args(argv)
    # The daemon owns shutdown: a terminal's Ctrl-C must not kill runs behind its back, and
    # if the daemon dies we die with it instead of running on unsupervised.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    calls.keep_tick_handler()
    die_with_parent()
    if _parent_gone(args.parent):
        sys.exit(0)  # the daemon died before the parent-death signal was armed
    become_subreaper()
    lower_priority(args.nice)
    try:
        Worker(_order_stream(), _protocol_stream()).serve()
    except ProtocolError as exc:
        # Orders come only from our daemon: one we cannot read means we cannot be trusted
        # with the runs we hold. Exiting makes the daemon settle them and start a new worker.
        print(f"easyflow worker {os.getpid()}: {exc}", file=sys.stderr, flush=True)
        sys.exit(2)


def _order_stream() -> int:
    """The pipe from the daemon, moved off fd 0: a callable step that reads its stdin (or a
    program it starts) would take the daemon's orders (a cancel, a hand-over) for its input.
    It reads /dev/null instead."""
    pipe = os.dup(sys.stdin.fileno())
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, sys.stdin.fileno())
    os.close(devnull)
    return pipe


def _protocol_stream() -> int:
    """The pipe to the daemon, moved off fd 1: a callable step runs in this process, and what
    it (or a program it starts) writes to fd 1 must not land in the protocol."""
    pipe = os.dup(sys.stdout.fileno())
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)
    return pipe


if __name__ == "__main__":
    main()
