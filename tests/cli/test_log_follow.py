"""`logs -f`: a run's log as it grows, read alongside the run's state until it ends. The
follower's pauses are where the run moves on here, so no test waits on the wall clock."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from easyflow_cli.cli import log_follow
from easyflow_cli.cli.log_follow import LogFollower
from easyflow_cli.core.model import (
    CostPriority,
    Mode,
    ModeReason,
    Outcome,
    PoolName,
    RunState,
    Trigger,
)
from easyflow_cli.core.planning import PlannedRun
from easyflow_cli.storage.run_queue import RunEnd, RunStart
from easyflow_cli.storage.store import Store

NOW = datetime(2026, 12, 2, 8, 0, tzinfo=UTC)


def queued(store: Store) -> int:
    return store.queue.enqueue([PlannedRun("w", Trigger.MANUAL, Mode.REAL_TIME, ModeReason.MANUAL,
                                           CostPriority.NORMAL, None, NOW)])[0]


def start(store: Store, run_id: int, log: Path) -> None:
    store.queue.claim_ids([run_id], now=NOW, pool=PoolName.FOREGROUND, worker="elsewhere")
    store.queue.start([RunStart(run_id, NOW, NOW, 1, str(log))])


def finish(store: Store, run_id: int, state: RunState = RunState.FAILED) -> None:
    store.queue.finish([RunEnd(run_id, Outcome(state, 3), NOW + timedelta(seconds=2), NOW)])


def append(log: Path, data: bytes) -> None:
    with log.open("ab") as file:
        file.write(data)


def on_each_pause(monkeypatch: pytest.MonkeyPatch, *steps: Callable[[], object]) -> list[float]:
    """The follower's pauses run `steps` in turn, as if the run went on meanwhile."""
    pending = list(steps)
    pauses: list[float] = []

    def pause(seconds: float) -> None:
        pauses.append(seconds)
        pending.pop(0)()

    monkeypatch.setattr(log_follow.time, "sleep", pause)
    return pauses


def test_follows_a_queued_run_from_its_start_until_it_ends(store, tmp_path, monkeypatch):
    run_id = queued(store)
    log = tmp_path / f"{run_id}.log"

    def begin() -> None:
        start(store, run_id, log)  # recorded a moment before the file is there
    pauses = on_each_pause(
        monkeypatch, lambda: None, begin, lambda: log.write_bytes(b"first\n"),
        lambda: append(log, b"second "), lambda: append(log, b"third\n"),
        lambda: finish(store, run_id))
    follower = LogFollower(store, run_id)
    pieces = list(follower.chunks())
    assert pieces == [b"first\n", b"second ", b"third\n"]  # as they came, nothing twice
    assert follower.run.state is RunState.FAILED and len(pauses) == 6


def test_a_run_that_already_ended_is_read_once_without_a_pause(store, tmp_path, monkeypatch):
    run_id = queued(store)
    log = tmp_path / f"{run_id}.log"
    start(store, run_id, log)
    log.write_bytes(b"a\nb\nc\n")
    finish(store, run_id, RunState.SUCCEEDED)
    pauses = on_each_pause(monkeypatch)
    follower = LogFollower(store, run_id, lines=2)
    assert b"".join(follower.chunks()) == b"b\nc\n"
    assert pauses == [] and follower.run.state is RunState.SUCCEEDED


def test_a_run_cancelled_before_it_started_ends_the_follow_with_no_log(store, monkeypatch):
    run_id = queued(store)
    on_each_pause(monkeypatch, lambda: store.queue.cancel([run_id], now=NOW, error="x"))
    follower = LogFollower(store, run_id)
    assert list(follower.chunks()) == []
    assert follower.run.state is RunState.CANCELLED
