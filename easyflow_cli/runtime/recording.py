"""What one wake-up of the daemon writes: every state change its workers reported, as one
transaction.

A worker reports each run's start and end; at hundreds of runs a second, one transaction (and
one statement) per report was most of the daemon's work. Starts and plain ends are gathered and
written with one statement each (a run whose start and end came in the same wake-up, as short
runs' do, with one write of its row); anything else is a change function applied after them,
in the order it was recorded. What must wait for the commit (letting a parked step run) waits.

When the database cannot be written (read-only, disk full...), the `Recorder` keeps each
wake-up's batch, in order, and replays them once it can be written again; meanwhile the daemon
claims and starts nothing new.
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TypeVar

from easyflow_cli.core.errors import DamagedRow
from easyflow_cli.core.model import Mode, RunState
from easyflow_cli.runtime.clock import Clock
from easyflow_cli.storage.run_queue import RunEnd, RunStart
from easyflow_cli.storage.store import Store

log = logging.getLogger("easyflow.daemon")
T = TypeVar("T")

# While the database cannot be written: first retry after this, doubling up to the maximum.
DB_RETRY_FIRST = 0.5
DB_RETRY_MAX = 8.0
DB_STILL_FAILING_EVERY = 60.0
# More successful ends than this in one batch are logged as one line, not one line each.
ENDS_LOGGED_ONE_BY_ONE = 3


@dataclass
class EndedRun:
    """A plain end (the run succeeded or was cancelled by its user), with what its log needs."""

    end: RunEnd
    workflow: str
    mode: Mode


@dataclass
class Batch:
    starts: list[RunStart] = field(default_factory=list)
    ends: list[EndedRun] = field(default_factory=list)
    changes: list[Callable[[], object]] = field(default_factory=list)
    after_commit: list[Callable[[], object]] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.starts or self.ends or self.changes or self.after_commit)

    def apply(self, store: Store, also: Callable[[], list[T]] = list) -> list[T]:
        """Write it all in one transaction, with what `also` writes (its result returned);
        then run what waited for the commit."""
        ends = [e.end for e in self.ends]
        with store.write():
            store.queue.start(_with_ends(self.starts, ends))
            already_ended = store.queue.finish(ends)
            for change in self.changes:
                _apply(change)
            result = also()
        for then in self.after_commit:
            then()
        log_ends(self.ends, set(already_ended))
        return result


def _with_ends(starts: list[RunStart], ends: list[RunEnd]) -> list[RunStart]:
    """The starts of runs that end in the same batch go with their ends (one write per run);
    the others, returned, are written alone."""
    if not ends:
        return starts
    ending = {end.run_id: end for end in ends}
    alone = []
    for start in starts:
        end = ending.get(start.run_id)
        if end is None:
            alone.append(start)
        else:
            end.start = start
    return alone


def _apply(change: Callable[[], object]) -> None:
    try:
        change()
    except DamagedRow as exc:  # a run changed by other means: the others are written still
        log.error("%s; left as it is", exc)


class Recorder:
    """Gathers a wake-up's changes and writes them; keeps them while the database cannot be."""

    def __init__(self, store: Store, clock: Clock) -> None:
        self.store = store
        self.clock = clock
        self.batch = Batch()
        self.backlog: list[Batch] = []
        self.retry_at: float | None = None  # monotonic; None while the database is healthy
        self.retry_delay = DB_RETRY_FIRST
        self.failing_since: float | None = None
        self.last_complaint = 0.0

    @property
    def healthy(self) -> bool:
        return self.retry_at is None

    def retry_due(self) -> bool:
        return self.retry_at is not None and self.clock.monotonic() >= self.retry_at

    def record(self, change: Callable[[], object],
               then: Callable[[], object] | None = None) -> None:
        """Write a change with the others of this wake-up; `then` runs once it is committed."""
        self.batch.changes.append(change)
        if then is not None:
            self.batch.after_commit.append(then)

    def write(self) -> None:
        """This wake-up's changes in one transaction, or kept, in order, until they can be."""
        self.write_with(list)

    def write_with(self, claims: Callable[[], list[T]]) -> list[T]:
        """This wake-up's changes and what `claims` writes (the runs it claims, returned) in
        one transaction: one commit per wake-up, not one for the reports and one for the
        claims. Nothing is claimed while changes wait for the database."""
        if not self.batch:
            return [] if self.backlog else claims()
        batch, self.batch = self.batch, Batch()
        if self.backlog:
            self.backlog.append(batch)
            return []
        try:
            return batch.apply(self.store, claims)
        except sqlite3.OperationalError as exc:
            self.backlog.append(batch)
            self.failed(exc)
            return []

    def failed(self, exc: sqlite3.OperationalError) -> None:
        """A write failed: complain (now and then), and try again after a growing delay."""
        now = self.clock.monotonic()
        if self.failing_since is None:
            self.failing_since = self.last_complaint = now
            log.error("cannot write the database %s: %s; no new runs start until it can be "
                      "written again (retrying with back-off)", self.store.path, exc)
        elif now - self.last_complaint >= DB_STILL_FAILING_EVERY:
            self.last_complaint = now
            log.error("still cannot write the database (for %.0fs): %s; %d changes waiting",
                      now - self.failing_since, exc, len(self.backlog))
        self.retry_at = now + self.retry_delay
        self.retry_delay = min(self.retry_delay * 2, DB_RETRY_MAX)

    def retry(self) -> None:
        """Replay the waiting changes in order; healthy again once all of them are written."""
        while self.backlog:
            try:
                self.backlog[0].apply(self.store)
            except sqlite3.OperationalError as exc:
                self.failed(exc)
                return
            self.backlog.pop(0)
        if self.failing_since is not None:
            log.info("the database can be written again (after %.1fs); resuming",
                     self.clock.monotonic() - self.failing_since)
        self.retry_at = self.failing_since = None
        self.retry_delay = DB_RETRY_FIRST


def log_ends(ends: list[EndedRun], already_ended: set[int]) -> None:
    recorded = [e for e in ends if e.end.run_id not in already_ended]
    succeeded = [e for e in recorded if e.end.outcome.state is RunState.SUCCEEDED]
    one_by_one = [e for e in recorded if e.end.outcome.state is not RunState.SUCCEEDED]
    if len(succeeded) > ENDS_LOGGED_ONE_BY_ONE:
        log.info("%d runs succeeded (%s)", len(succeeded), _id_ranges(succeeded))
    else:
        one_by_one += succeeded
    for ended in one_by_one:
        end = ended.end
        log.info("run %d (%s, %s) %s in %.2fs", end.run_id, ended.workflow, ended.mode.value,
                 end.outcome.state.value, end.duration_s() or 0.0)


def _id_ranges(ended: list[EndedRun]) -> str:
    """Run ids as compact ranges: `runs 4-9, 12`."""
    ids = sorted(e.end.run_id for e in ended)
    spans, first, last = [], ids[0], ids[0]
    for run_id in ids[1:]:
        if run_id != last + 1:
            spans.append((first, last))
            first = run_id
        last = run_id
    spans.append((first, last))
    return "runs " + ", ".join(f"{a}-{b}" if b > a else f"{a}" for a, b in spans)
