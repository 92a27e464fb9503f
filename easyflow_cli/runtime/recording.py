"""What one wake-up of the daemon writes: every state change its workers reported, as one
transaction.

A worker reports each run's start and end; at hundreds of runs a second, one transaction (and
one statement) per report was most of the daemon's work. Starts and plain ends are gathered and
written with one statement each; anything else is a change function applied after them, in the
order it was recorded. What must wait for the commit (letting a parked step run) waits.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field

from easyflow_cli.core.model import Mode, RunState
from easyflow_cli.storage.run_queue import RunEnd, RunStart
from easyflow_cli.storage.store import Store

log = logging.getLogger("easyflow.daemon")

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
    changes: list[Callable[[], None]] = field(default_factory=list)
    after_commit: list[Callable[[], None]] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.starts or self.ends or self.changes or self.after_commit)

    def apply(self, store: Store) -> None:
        """Write it all in one transaction; then run what waited for the commit."""
        with store.write():
            if self.starts:
                store.queue.start(self.starts)
            already_ended = store.queue.finish([e.end for e in self.ends])
            for change in self.changes:
                change()
        for then in self.after_commit:
            then()
        log_ends(self.ends, set(already_ended))


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
                 end.outcome.state.value, _duration(end))


def _duration(end: RunEnd) -> float:
    return (end.at - end.began_at).total_seconds() if end.began_at else 0.0


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
