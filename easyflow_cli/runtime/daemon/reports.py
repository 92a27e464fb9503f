"""What the daemon does with its workers' reports, and with a worker that exits.

Starts and plain ends (succeeded, or cancelled by their user) are gathered in the wake-up's
batch and written with one statement each; any other end goes through the settlement rules.
"""

from __future__ import annotations

import logging
import selectors
from collections.abc import Callable
from datetime import UTC, datetime
from functools import partial
from pathlib import Path

from easyflow_cli.core.config import Config
from easyflow_cli.core.model import Outcome, RunState, StepGroup, StopReason
from easyflow_cli.core.offpeak import OffPeakWindow
from easyflow_cli.runtime.clock import Clock
from easyflow_cli.runtime.daemon import settlement
from easyflow_cli.runtime.daemon.containment import MARKS_ONLY, Containment
from easyflow_cli.runtime.daemon.recovery import kill_group
from easyflow_cli.runtime.daemon.settlement import Settlement
from easyflow_cli.runtime.pools import Assignment, Pool, PoolWorker
from easyflow_cli.runtime.process_identity import boot_id
from easyflow_cli.runtime.protocol import (
    Finished,
    Ran,
    Ready,
    Released,
    Report,
    Started,
    Step,
)
from easyflow_cli.runtime.recording import EndedRun, Recorder
from easyflow_cli.runtime.start_slot import discard, read_slot, slot_path
from easyflow_cli.storage.run_queue import RunEnd, RunStart
from easyflow_cli.storage.store import Store

log = logging.getLogger("easyflow.daemon")

# Ends written in bulk: no retry to plan, no shutdown to settle.
PLAIN_ENDS = (RunState.SUCCEEDED, RunState.CANCELLED)


class WorkerReports:
    def __init__(self, store: Store, recorder: Recorder, clock: Clock, config: Config,
                 selector: selectors.BaseSelector, log_path: Callable[[int], str],
                 token: str | None = None, containment: Containment | None = None,
                 slots: Path | None = None) -> None:
        self.store = store
        self.recorder = recorder
        self.clock = clock
        self.config = config  # replaced on reload
        self.selector = selector
        self.log_path = log_path
        self.token = token  # the mark of its workers' runs' processes
        self.containment = containment or MARKS_ONLY
        self.slots = slots  # where its workers note the call steps they begin
        self.draining = False  # then runs given back are noted so, dead workers not replaced
        self._flag_window: OffPeakWindow | None = None  # the last second's off-peak flag
        self._flag_second = 0
        self._flag = False

    def watch(self, workers: list[PoolWorker]) -> None:
        for worker in workers:
            self.selector.register(worker.stdout_fd, selectors.EVENT_READ,
                                   lambda fd, w=worker: self.on_output(w))

    def on_output(self, worker: PoolWorker) -> bool:
        """Take what the worker wrote; True unless it was only progress ("started", "step"),
        which makes nothing due or free."""
        reports, eof = worker.read_reports()
        progress_only = not eof and all(type(r) in (Started, Step) for r in reports)
        if progress_only and len(worker.assignments) > 1 and worker.pool.idle_workers():
            progress_only = False  # a run started with others behind it: time a release
        for report in reports:
            self.on_report(worker, report)
        if eof:
            self.on_exit(worker)
        return not progress_only

    def on_report(self, worker: PoolWorker, report: Report) -> None:
        if isinstance(report, Ready):
            worker.ready = True
            return
        if isinstance(report, Released):
            self.on_released(worker, report.ids)
            return
        assignment = worker.assignments.get(report.id)
        if assignment is None:
            return
        if isinstance(report, Step):
            self.on_step(worker, assignment, report)
        elif isinstance(report, Started):
            self.on_started(worker, assignment, report.at)
        elif isinstance(report, Ran):
            self.on_started(worker, assignment, report.started_at)
            self.on_finished(worker, assignment, report.at, report.outcome)
        elif isinstance(report, Finished):
            self.on_finished(worker, assignment, report.at, report.outcome)

    def on_step(self, worker: PoolWorker, assignment: Assignment, step: Step) -> None:
        """A step's process group, recorded with the wake-up's other changes (the step already
        runs: what a crash leaves is found by its mark and its worker's session)."""
        assignment.pgid = step.pgid
        group = StepGroup(step.pgid, step.leader_start, boot_id())
        self.recorder.record(lambda: self.store.queue.record_step(step.id, group))

    def on_started(self, worker: PoolWorker, assignment: Assignment, at: float) -> None:
        assignment.started = True
        assignment.started_at = moment = _moment(at)
        assignment.started_mono = self.clock.monotonic()
        self.recorder.batch.starts.append(RunStart(
            assignment.run_id, moment, assignment.run.enqueued_at, worker.pid,
            self.log_path(assignment.run_id), self._off_peak(at, moment)))

    def _off_peak(self, at: float, moment: datetime) -> bool | None:
        """Whether the tariff window holds `moment`, asked once per second rather than for
        each of the runs a wake-up starts: the window's edges are whole minutes of local time,
        so a whole second is on one side of them."""
        window = self.config.tariff_window
        if window is None:
            return None
        second = int(at)
        if window is not self._flag_window or second != self._flag_second:
            self._flag_window, self._flag_second = window, second
            self._flag = window.contains(moment)
        return self._flag

    def on_finished(self, worker: PoolWorker, assignment: Assignment, at: float,
                    outcome: Outcome) -> None:
        del worker.assignments[assignment.run_id]
        if assignment.started_mono is not None:
            worker.pool.note_duration(self.clock.monotonic() - assignment.started_mono)
        moment = _moment(at)
        stop = assignment.stop_reason
        if stop is not StopReason.SHUTDOWN and outcome.state in PLAIN_ENDS:
            self.recorder.batch.ends.append(_ended_run(assignment, outcome, moment))
            return
        run_id = assignment.run_id
        self.recorder.record(lambda: self._settle(
            run_id, lambda facts: settlement.after_end(facts, outcome, stop), moment))

    def on_released(self, worker: PoolWorker, run_ids: list[int]) -> None:
        """Runs a worker gave back unstarted: into the queue again, first in line as before."""
        worker.releasing = False
        for run_id in run_ids:
            worker.assignments.pop(run_id, None)
        note = None if not self.draining else settlement.SHUTDOWN_NOTE + "; re-queued"
        if run_ids:
            log.info("worker %s gave back %d runs it had not started", worker.name, len(run_ids))
            self.recorder.record(lambda: self.store.queue.requeue(run_ids, note))

    def on_exit(self, worker: PoolWorker) -> None:
        self.selector.unregister(worker.stdout_fd)
        if worker.assignments:
            worker.end_session()  # while its pid is still its own: before `close` reaps it
        status = worker.close()
        pool: Pool = worker.pool
        pool.remove(worker)
        abandoned = []
        if self.token:
            # What left the group (setsid, double fork) and lost its subreaper with the worker.
            self.containment.stop(list(worker.assignments), [self.token])
            self._count_begun_steps(worker)
        for assignment in worker.assignments.values():
            if assignment.pgid:
                kill_group(assignment.pgid)
            if assignment.stop_reason is StopReason.SHUTDOWN:
                self.recorder.record(partial(self._settle, assignment.run_id,
                                             settlement.after_interruption, self.clock.now()))
            elif assignment.stop_reason is StopReason.OVERDUE:
                overdue = partial(settlement.after_overdue, pid=worker.pid)
                self.recorder.record(partial(self._settle, assignment.run_id, overdue,
                                             self.clock.now()))
            else:
                abandoned.append(assignment.run_id)
        if abandoned:
            self.recorder.record(partial(self._settle_orphans, abandoned, worker.pid, status))
        if not worker.retiring:
            log.warning("worker %s (pid %d) died with status %s; replacing it", worker.name,
                        worker.pid, status)
        if not self.draining:
            self.watch(pool.fill())

    def _count_begun_steps(self, worker: PoolWorker) -> None:
        """Runs whose steps it had begun, whose starts had not reached us, are started runs:
        settled as failed, never run a second time (start_slot.py)."""
        if self.slots is None or self.token is None:
            return
        slot = slot_path(self.slots, self.token, worker.pid)
        for run_id in read_slot(slot):
            begun = worker.assignments.get(run_id)
            if begun is not None and not begun.started:
                self.on_started(worker, begun, self.clock.now().timestamp())
        self.recorder.batch.after_commit.append(partial(discard, [slot]))

    def _settle_orphans(self, run_ids: list[int], pid: int, status: int | None) -> None:
        settlement.settle_abandoned(
            self.store, run_ids, self.clock.now(), note="its worker died before it started",
            error=f"worker process {pid} died (exit status {status}) while running it")

    def _settle(self, run_id: int, rule: Callable[[settlement.RunFacts], Settlement],
                at: datetime) -> None:
        decided = rule(settlement.facts_of(self.store, run_id))
        settlement.apply(self.store, run_id, decided, at)


def _ended_run(assignment: Assignment, outcome: Outcome, moment: datetime) -> EndedRun:
    run = assignment.run
    end = RunEnd(assignment.run_id, outcome, moment, assignment.started_at or run.claimed_at,
                 run.deadline)
    return EndedRun(end, run.workflow, run.mode)


def _moment(at: float) -> datetime:
    """A worker's report time (seconds since the epoch) as the aware UTC time we store."""
    return datetime.fromtimestamp(at, UTC)
