"""The run queue's interface: one bulk method per arrow of a run's life, and the reads.

    enqueue ──▶ queued ──claim──▶ running ──start──▶ running ──finish──▶ succeeded | failed
                  ▲  │                 │                                 timed_out | cancelled
                  │  ├──promote──▶ queued (real-time)
                  │  ├──defer────▶ queued (another not_before)
                  │  └──cancel───▶ cancelled
                  └──requeue── running (claimed, its worker gave it back or is gone)
    running, its daemon or worker gone ──settle_abandoned──▶ queued (never started)
                                                              | failed (+ its next attempt)
    succeeded | failed | timed_out | cancelled ──prune──▶ gone, added to its day's rollup

Within a mode, ready runs are served earliest deadline first, then by cost priority (high,
normal, low), then first in. Every backend passes `tests/storage/test_run_queue_contract.py`.
Rules that hold for any backend are functions over the interface at the end of this module.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, tzinfo
from typing import Any, Protocol

from easyflow_cli.core.eco_plan import RunEstimate
from easyflow_cli.core.errors import BadInput, NotFound
from easyflow_cli.core.learned import RunSample
from easyflow_cli.core.model import (
    ClaimedRun,
    Mode,
    Outcome,
    PoolName,
    Run,
    RunState,
    StepGroup,
)
from easyflow_cli.core.notify import NoticeBook
from easyflow_cli.core.planning import PlannedRun, QueuePolicy, eco_not_before
from easyflow_cli.core.receipts import Charges, Pricing, PricingSource, Stretch, charges_of


@dataclass(frozen=True, slots=True)
class Hand:
    """A worker to claim runs for, how many it may take, and the batch they form (eco)."""

    worker: str
    room: int
    batch_id: str | None = None


# RunStart and RunEnd are made once per run on the daemon's hot path, hence not frozen (a
# frozen dataclass takes several times as long to make).
@dataclass(frozen=True, slots=True)
class HeldByLimit:
    """A workflow at its `max_concurrent`, with runs queued behind it."""

    workflow: str
    max_concurrent: int
    running: int
    queued: int


@dataclass(slots=True)
class RunStart:
    """A claimed run's first step is starting (as whoever executes it reported)."""

    run_id: int
    at: datetime
    enqueued_at: datetime  # known to whoever claimed the run: saves a read per run
    pid: int | None = None
    log_path: str | None = None
    off_peak: bool | None = None


@dataclass(slots=True)
class RunEnd:
    """A running run ended."""

    run_id: int
    outcome: Outcome
    at: datetime
    began_at: datetime | None  # started_at, else claimed_at: where its duration counts from
    deadline: datetime | None = None
    # Its start, when that was reported with the end: recorded by the same write.
    start: RunStart | None = None

    def duration_s(self) -> float | None:
        """As its executor measured it (monotonic time), else from the stamps: began → at."""
        if self.outcome.duration_s is not None:
            return self.outcome.duration_s
        if self.began_at is None:
            return None
        return round((self.at - self.began_at).total_seconds(), 6)

    @classmethod
    def of(cls, run: Run, outcome: Outcome, at: datetime) -> RunEnd:
        return cls(run.id, outcome, at, run.started_at or run.claimed_at, run.deadline)


@dataclass(frozen=True, slots=True)
class PrunedRun:
    """A run `prune` removed, and the log file it leaves for its caller to delete."""

    run_id: int
    log_path: str | None


# Plans the next attempt of a run that failed, if it may have one (see planning.plan_retry).
NextAttempt = Callable[[Run], PlannedRun | None]


def no_retry(run: Run) -> PlannedRun | None:
    return None


class RunQueue(Protocol):
    """The durable queue of runs. Each transition is atomic, and applies only to runs in the
    state it starts from: a run in another state is left as it is."""

    # Whose run ends `finish` watches for notification events (set by the daemon, or by a
    # foreground run); None watches nothing. How many events its ends wrote so far.
    notices: NoticeBook | None
    events_written: int
    # What `finish` charges the runs that end with (the series loaded now); None: nothing.
    pricing: PricingSource | None

    # ---------------------------------------------------------------- transitions

    def enqueue(self, planned: Sequence[PlannedRun]) -> range:
        """Add planned runs, state `queued`; their ids, consecutive, in the given order.

        Sets every field of the plan, `state` and `id`; the others are unset."""
        ...

    def claim(self, mode: Mode, *, now: datetime, pool: PoolName,
              hands: Sequence[Hand]) -> list[list[ClaimedRun]]:
        """Claim ready runs of `mode` (`not_before` unset or reached) for workers: up to each
        hand's room, dealt in turn best first; the runs of each hand, best first. A workflow
        with a `max_concurrent` gets no more runs running (in any pool) than that: its others
        stay queued, in their place, and do not hold up other workflows' runs.

        queued → running; sets `claimed_at` (now), `pool`, `worker`, `batch_id` (the hand's)."""
        ...

    def claim_ids(self, run_ids: Sequence[int], *, now: datetime, pool: PoolName,
                  worker: str) -> list[ClaimedRun]:
        """Claim these runs if they are still queued, ready or not, as far as their workflow's
        `max_concurrent` allows; those claimed.

        queued → running; sets `claimed_at`, `pool`, `worker`."""
        ...

    def start(self, starts: Sequence[RunStart]) -> None:
        """Record that claimed runs began executing.

        Sets `started_at`, `pid`, `log_path`, `off_peak`, `queue_wait_s` (enqueued → started)."""
        ...

    def record_step(self, run_id: int, group: StepGroup) -> None:
        """The process group of a running run's current step, so a crash can clean up after it.

        Sets `pgid`, and the group's leader identity (read back by `step_group`)."""
        ...

    def finish(self, ends: Sequence[RunEnd]) -> list[int]:
        """Record how running runs ended; the ids among them no longer running (cancelled
        meanwhile), which keep their state.

        running → the outcome's state; sets `finished_at`, `exit_code`, `error`, `cpu_user_s`,
        `cpu_system_s`, `peak_rss_kb`, `energy_j`, `duration_s` (`RunEnd.duration_s`) and
        `deadline_met` (unset without a deadline); an end that carries its `start` also sets
        what `start` sets (a run that is no longer running gets its start alone). For a
        workflow the `notices` book has a rule for, in the same transaction: its incident, and
        the outbox rows of the events the end makes (`notify_events.end_events`). Where
        `pricing` has a tariff or a carbon forecast loaded, also the run's charges
        (`core.receipts.charges_of`), read back by `charges`."""
        ...

    def requeue(self, run_ids: Sequence[int], note: str | None = None) -> None:
        """Put claimed runs back in the queue, first in line as before.

        running → queued; sets `error` (the note); unsets `claimed_at`, `started_at`, `pool`,
        `worker`, `batch_id`, `pid`, `pgid` (and its step group), `queue_wait_s`."""
        ...

    def cancel(self, run_ids: Sequence[int], *, now: datetime, error: str) -> list[int]:
        """Cancel the queued runs among these (a running run is stopped by whoever executes
        it); the ids cancelled.

        queued → cancelled; sets `finished_at` (now), `error`. On a cluster also a run
        dispatched that no worker accepted yet (running, no `worker` → cancelled), whose
        `dispatch_token` it unsets: a late message finds nothing to accept."""
        ...

    def promote(self, now: datetime) -> list[int]:
        """Queued runs whose promotion time has come become real-time; their ids.

        Sets `mode` (real-time), `mode_reason` (promoted); unsets `not_before`, `promote_at`."""
        ...

    def defer(self, not_before: Sequence[tuple[int, datetime | None, str | None]]) -> None:
        """Change when queued runs may start, and why (a re-planned eco wait).

        Sets `not_before` and `not_before_reason`."""
        ...

    def settle_abandoned(self, run_ids: Sequence[int], *, now: datetime, note: str,
                         error: str, next_attempt: NextAttempt = no_retry) -> list[Run]:
        """Runs left running by a daemon or worker that is gone, settled in one transaction
        (runs no longer running are left as they are). The one rule for them:

        - never started: back in the queue, as `requeue` with `note` (nothing of it ran, so
          it is not an attempt);
        - started: failed, as `finish` with `Outcome(FAILED, error=error)` (it may have done
          part of its work: running it again is a retry, which its workflow must allow); then
          the next attempt `next_attempt` plans for it, if any, as `enqueue`;
        - on a cluster, its cancel asked (`request_cancel`), started or not: cancelled, as
          `finish` with `Outcome(CANCELLED)`, never put back in line nor retried.

        Returns the failed runs, as recorded."""
        ...

    def prune(self, run_ids: Sequence[int], *, zone: tzinfo) -> list[PrunedRun]:
        """Remove finished runs from the detail, having added each to its rollup (its local
        day in `zone` × workflow × mode × pool × tariff: see `storage/rollups.py`) in the
        same transaction, so reports count it either way; runs not finished are left.

        finished → gone; adds to the rollup row's counts, sums, sketches and seconds."""
        ...

    # ---------------------------------------------------------------- reads

    def get(self, run_id: int) -> Run:
        """The run, or NotFound."""
        ...

    def charges(self, run_id: int) -> Charges:
        """What the run was charged as it ended under a tariff or carbon forecast (all None
        where none was loaded, or it has not ended)."""
        ...

    def step_group(self, run_id: int) -> StepGroup | None:
        """The process group `record_step` recorded last for this run, if it still holds one."""
        ...

    def retried_as(self, run_id: int) -> Run | None:
        """The run queued as the next attempt of this one (its `retry_of`), if any."""
        ...

    def latest(self, *, workflow: str | None = None, state: RunState | None = None,
             limit: int = 50) -> list[Run]:
        """The newest runs, newest first."""
        ...

    def running(self) -> list[Run]:
        """Runs in state `running`, oldest first."""
        ...

    def queued_ids(self, workflow: str) -> list[int]:
        ...

    def off_peak_waiting(self) -> list[tuple[int, str, datetime | None]]:
        """Queued eco runs (no retries) whose start the eco planning decides, with their
        workflows and deadlines."""
        ...

    def depths(self) -> dict[Mode, int]:
        """How many runs of each mode are queued."""
        ...

    def ahead_of(self, run_id: int, now: datetime) -> int:
        """How many queued runs of this run's mode, ready at `now`, come before it in the
        ready queue's order; 0 for a run no longer queued."""
        ...

    def held_by_limit(self) -> list[HeldByLimit]:
        """The workflows whose queued runs wait because their `max_concurrent` runs are
        running, by name."""
        ...

    def next_promotion_at(self) -> datetime | None:
        ...

    def next_ready_at(self, mode: Mode, now: datetime) -> datetime | None:
        """When the earliest deferred run of a mode becomes ready (off-peak or retry backoff)."""
        ...

    def typical_duration(self, workflow: str, sample: int = 20) -> timedelta | None:
        """The median duration of this workflow's recent successful runs, if it has any."""
        ...

    def recent_successes(self, workflow: str, mode: Mode | None = None,
                         limit: int = 50) -> list[RunSample]:
        """This workflow's newest successful runs (of `mode`, if given), newest first: what
        `core.learned.learn` turns into the durations the planner, quotes and promotion use."""
        ...

    def awaited(self, workflows: Sequence[str]) -> list[Run]:
        """Runs of these workflows, not ended, that could become late: those with a deadline,
        and scheduled runs still queued."""
        ...

    def has_pending_recurring(self, workflow: str) -> bool:
        """Is a scheduled (or retried) run of this workflow still queued or running?"""
        ...

    def finished_before(self, cutoff: datetime, *, workflow: str | None = None,
                        limit: int) -> list[int]:
        """Up to `limit` runs that finished before `cutoff`, earliest first."""
        ...

    def beyond_newest(self, workflow: str, keep: int, *, limit: int) -> list[int]:
        """Up to `limit` finished runs of the workflow older than its `keep` newest finished
        runs, oldest first."""
        ...

    def oldest_finished_at(self) -> datetime | None:
        ...

    def unfinished_count(self, ids: range) -> int:
        """How many of these runs are still queued or running."""
        ...

    def last_finished_at(self, ids: range) -> datetime | None:
        ...


# -------------------------------------------------------------------- rules over any backend


def cancel_run(queue: RunQueue, run_id: int, *, now: datetime) -> Run:
    """Cancel one queued run by its user's request; a run that already ended is refused."""
    run = queue.get(run_id)
    if run.state.finished:
        raise BadInput(f"run {run_id} already ended ({run.state.value})")
    queue.cancel([run_id], now=now, error="cancelled by user")
    return queue.get(run_id)


def attempt_chain(queue: RunQueue, run_id: int) -> list[Run]:
    """Every attempt of the run this one is an attempt of, the first attempt first (as far back
    as history is kept); NotFound for an unknown run."""
    chain = [queue.get(run_id)]
    while chain[0].retry_of is not None:
        try:
            chain.insert(0, queue.get(chain[0].retry_of))
        except NotFound:
            break
    while (retry := queue.retried_as(chain[-1].id)) is not None:
        chain.append(retry)
    return chain


def replan_eco(queue: RunQueue, policy: QueuePolicy, now: datetime,
               estimate: Callable[[str], RunEstimate | None]) -> int:
    """Re-decide when waiting eco runs may start under `policy` (the daemon reloaded a config
    whose eco planning changed: its window, what it optimises, its forecast); how many were
    re-planned. `estimate`: what a run of a workflow is planned by, asked once per workflow."""
    waiting = queue.off_peak_waiting()
    estimates = {workflow: estimate(workflow) for workflow in {w for _, w, _ in waiting}}
    queue.defer([(run_id, *eco_not_before(policy, now, deadline, None, estimates[workflow],
                                          None))
                 for run_id, workflow, deadline in waiting])
    return len(waiting)


def charged_ends(pricing: Pricing, ends: Sequence[RunEnd],
                 submitted: dict[int, tuple[Mode, datetime]]) -> list[tuple[int, Charges]]:
    """What each run that ended (and that measured a duration) is charged under `pricing`,
    given each one's mode and submission time; the backends write it in `finish`."""
    charged = []
    for end in ends:
        duration = end.duration_s()
        if end.began_at is None or duration is None or end.run_id not in submitted:
            continue
        mode, enqueued = submitted[end.run_id]
        outcome = end.outcome
        stretch = Stretch(mode, enqueued, end.began_at, duration,
                          outcome.cpu_user_s + outcome.cpu_system_s, outcome.energy_j)
        charged.append((end.run_id, charges_of(pricing, stretch)))
    return charged


def keep_within(rows: list[Any], rooms: dict[str, int]) -> tuple[list[Any], list[int]]:
    """The rows their workflows have room for (taking it), and the ids of the others."""
    kept, over = [], []
    for row in rows:
        room = rooms.get(row[1])
        if room is None or room > 0:
            kept.append(row)
            if room is not None:
                rooms[row[1]] = room - 1
        else:
            over.append(row[0])
    return kept, over


def deal(runs: list[ClaimedRun], rooms: list[int]) -> list[list[ClaimedRun]]:
    """Runs dealt to hands in turn, best first, so that a few spread over the workers."""
    hands: list[list[ClaimedRun]] = [[] for _ in rooms]
    left = list(rooms)
    turn = 0
    for run in runs:  # there are at most sum(rooms) of them
        while not left[turn]:
            turn = (turn + 1) % len(left)
        hands[turn].append(run)
        left[turn] -= 1
        turn = (turn + 1) % len(left)
    return hands


def seconds_between(start: datetime | None, end: datetime) -> float | None:
    """Seconds from `start` to `end`, to the microsecond; None without a start."""
    if start is None:
        return None
    return round((end - start).total_seconds(), 6)
