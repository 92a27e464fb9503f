"""Hand ready runs to idle workers: claims from the queue, orders to the pools.

Real-time first, then balanced, then eco. Real-time and balanced workers are topped up with
one claim for all of them (several runs each while the pool's runs are short); each idle eco
worker takes a batch of up to `batch_size` runs at once.
"""

from __future__ import annotations

import logging
import os
import uuid
from datetime import datetime

from easyflow_cli.core.config import Config
from easyflow_cli.core.errors import NotFound
from easyflow_cli.core.model import ClaimedRun, Mode, Outcome, PoolName, RunState
from easyflow_cli.runtime.clock import Clock
from easyflow_cli.runtime.daemon.overdue import time_allowed
from easyflow_cli.runtime.executor import limits_for
from easyflow_cli.runtime.pools import Pool, PoolWorker
from easyflow_cli.runtime.protocol import RunOrder, RunTicket, SpecEntry
from easyflow_cli.runtime.recording import Recorder
from easyflow_cli.storage.run_queue import Hand, RunEnd
from easyflow_cli.storage.store import Store

log = logging.getLogger("easyflow.daemon")


class Dispatcher:
    def __init__(self, store: Store, pools: dict[Mode, Pool], recorder: Recorder, clock: Clock,
                 config: Config, logs_dir: str) -> None:
        self.store = store
        self.pools = pools
        self.recorder = recorder
        self.clock = clock
        self.config = config  # replaced on reload
        self.logs_dir = logs_dir

    def dispatch(self, now: datetime) -> None:
        """Claim runs for every free hand, with the wake-up's reports in one transaction;
        hand them over once it is committed (a worker never runs a run not yet claimed)."""
        for worker, runs in self.recorder.write_with(lambda: self._claims(now)):
            self.hand_over(worker, runs)
        now_mono = self.clock.monotonic()
        for mode, pool in self.pools.items():
            if mode is not Mode.ECO and pool.idle_workers():
                self._release_stuck(pool, now_mono)

    def _claims(self, now: datetime) -> list[tuple[PoolWorker, list[ClaimedRun]]]:
        claimed = []
        for mode in Mode:
            pool = self.pools[mode]
            claimed += (self._batches(pool, now) if mode is Mode.ECO
                        else self._top_ups(pool, now))
        return claimed

    def _top_ups(self, pool: Pool, now: datetime) -> list[tuple[PoolWorker, list[ClaimedRun]]]:
        """Runs for each of the pool's workers with room (one claim for all of them)."""
        rooms = pool.rooms(self.clock.monotonic())
        if not rooms:
            return []
        hands = self.store.queue.claim(pool.mode, now=now, pool=PoolName.of(pool.mode),
                                       hands=[Hand(w.name, room) for w, room in rooms])
        return [(worker, runs) for (worker, _), runs in zip(rooms, hands, strict=True) if runs]

    @staticmethod
    def _release_stuck(pool: Pool, now_mono: float) -> None:
        """A worker is left with nothing: runs stuck behind a long one go back."""
        for worker in pool.workers:
            if worker.waiting_behind_long_run(now_mono):
                worker.release()

    def _batches(self, pool: Pool, now: datetime) -> list[tuple[PoolWorker, list[ClaimedRun]]]:
        """A batch of up to `batch_size` runs for each idle worker."""
        claimed = []
        for worker in pool.idle_workers():
            limit = pool.config.batch_size
            batch_id = uuid.uuid4().hex[:12] if limit > 1 else None
            runs = self.store.queue.claim(pool.mode, now=now, pool=PoolName.of(pool.mode),
                                          hands=[Hand(worker.name, limit, batch_id)])[0]
            if not runs:
                break
            claimed.append((worker, runs))
        return claimed

    def next_release_in(self) -> float | None:
        """Seconds until a run held behind a long one should be given back to a free worker."""
        moments = [due for mode, pool in self.pools.items()
                   if mode is not Mode.ECO and pool.idle_workers()
                   for due in map(PoolWorker.release_due_at, pool.workers) if due is not None]
        return max(0.0, min(moments) - self.clock.monotonic()) if moments else None

    def hand_over(self, worker: PoolWorker, runs: list[ClaimedRun]) -> None:
        specs: dict[str, SpecEntry] = {}
        kept = []
        for run in runs:
            name = run.workflow
            try:
                if name not in specs:
                    specs[name] = SpecEntry(*self.store.workflow_spec_dict(name))
            except NotFound:
                self._workflow_gone(run)
                continue
            kept.append(run)
        if not kept:
            return
        order = RunOrder(limits_for(self.config, kept[0].mode), specs,
                         [RunTicket(run.id, run.workflow, self.log_path(run.id))
                          for run in kept])
        if not worker.assign(kept, order):
            log.warning("worker %s did not take its orders; it will be replaced", worker.name)
        allowed = {name: time_allowed(entry, order.limits) for name, entry in specs.items()}
        for run in kept:
            worker.assignments[run.id].time_allowed = allowed[run.workflow]

    def _workflow_gone(self, run: ClaimedRun) -> None:
        outcome = Outcome(RunState.FAILED, error="workflow was removed before the run started")
        end = RunEnd(run.id, outcome, self.clock.now(), run.claimed_at, run.deadline)
        self.recorder.record(lambda: self.store.queue.finish([end]))

    def log_path(self, run_id: int) -> str:
        # The same path as run_log_path, without building a Path twice per run.
        return f"{self.logs_dir}{os.sep}{run_id}.log"
