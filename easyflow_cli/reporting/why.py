"""`easyflow why RUN_ID`: why a run waits, or ran when it did, from what the database holds — its
mode and the reason recorded with it, the window it waits for and the price there, the learned
p90 its plan rests on, when it would be promoted, its place in the queue, the pools' workers in
use and its workflow's concurrency limit. One dict, which the CLI prints or renders.

A handful of indexed reads, whatever the history's size.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from easyflow_cli.core.config import Config
from easyflow_cli.core.costs import cost_at, exact
from easyflow_cli.core.errors import NotFound
from easyflow_cli.core.forecast import Forecast
from easyflow_cli.core.learned import LearnedDurations, learn
from easyflow_cli.core.model import Mode, ModeReason, Run, RunState
from easyflow_cli.core.timeutil import to_iso
from easyflow_cli.reporting.hosts import run_host
from easyflow_cli.storage.dialect import ReportStore

# What each recorded mode reason means, in the words `why` uses.
BECAUSE = {
    ModeReason.EXPLICIT: "its mode was asked for (--mode, or its schedule's mode)",
    ModeReason.WORKFLOW: "its workflow sets execution_mode",
    ModeReason.MANUAL: "run --now with no mode set runs real-time",
    ModeReason.SCHEDULE: "a schedule fired it, and scheduled work runs eco",
    ModeReason.DEADLINE: "its deadline was near when it was queued",
    ModeReason.DEFAULT: "nothing chose a mode, so balanced",
    ModeReason.PROMOTED: "its deadline came near while it waited, so it was promoted",
}


def explain_run(store: ReportStore, config: Config, run_id: int, now: datetime,
                tariff: Forecast | None = None) -> dict[str, Any]:
    """Everything `why` says about the run (NotFound for an unknown run); its window priced
    by `tariff` where one is loaded and covers it."""
    run = store.queue.get(run_id)
    learned, basis = learned_for(store, run)
    running = store.queue.running() if run.state is RunState.QUEUED else []
    return {
        "run": run.id, "workflow": run.workflow, "state": run.state.value,
        "mode": run.mode.value, "mode_reason": run.mode_reason.value,
        "because": BECAUSE[run.mode_reason], "trigger": run.trigger.value,
        "followed": run.followed, "deadline": to_iso(run.deadline),
        "enqueued_at": to_iso(run.enqueued_at), "started_at": to_iso(run.started_at),
        "finished_at": to_iso(run.finished_at), "host": run_host(store, run),
        "queue_wait_s": run.queue_wait_s,
        "off_peak": run.off_peak, "deadline_met": run.deadline_met,
        "window": _window(run, config, learned, now, tariff),
        "planned": run.not_before_reason,
        "learned": _learned(learned) | {"mode": basis},
        "promote_at": to_iso(run.promote_at),
        "queue": _queue(store, run, now),
        "pools": _pools(config, running) if run.state is RunState.QUEUED else None,
        "limit": _limit(store, run, running),
    }


def learned_for(store: ReportStore, run: Run) -> tuple[LearnedDurations, str | None]:
    """The durations of its mode's recent successes, else of all its workflow's (and which:
    the mode, or None for all)."""
    own = learn(store.queue.recent_successes(run.workflow, run.mode))
    if own.enough:
        return own, run.mode.value
    return learn(store.queue.recent_successes(run.workflow)), None


def _window(run: Run, config: Config, learned: LearnedDurations, now: datetime,
            tariff: Forecast | None) -> dict[str, Any] | None:
    """The start it was held for, and what a run like its recent ones (its p90) costs there
    against real-time now."""
    if run.not_before is None:
        return None
    like = _Like.of(learned, config)
    then, priced_by = cost_at(config, run.mode, run.not_before, like.duration_s, like.cpu_s,
                              like.energy_kwh, tariff)
    at_once, _ = cost_at(config, Mode.REAL_TIME, now, like.duration_s, like.cpu_s,
                         like.energy_kwh, tariff)
    window = config.tariff_window
    return {
        "not_before": to_iso(run.not_before), "waiting": run.not_before > now,
        "off_peak": window.contains(run.not_before) if window else False,
        "currency": config.costs.currency, "cost": exact(then),
        "real_time_cost": exact(at_once), "priced_by": priced_by,
    }


@dataclass(frozen=True)
class _Like:
    """A run like the workflow's recent ones, as priced: its p90 duration, CPU and energy."""

    duration_s: float
    cpu_s: float
    energy_kwh: float

    @classmethod
    def of(cls, learned: LearnedDurations, config: Config) -> _Like:
        duration = learned.duration.p90 if learned.duration else config.costs.default_duration
        cpu = learned.cpu.p90 if learned.cpu else 0.0
        joules = learned.energy.p90 if learned.energy else cpu * config.costs.watts_per_core
        return cls(duration, cpu, joules / 3.6e6)


def _learned(learned: LearnedDurations) -> dict[str, Any]:
    return {
        "runs": learned.runs, "enough": learned.enough,
        "p50_s": learned.duration.p50 if learned.duration else None,
        "p90_s": learned.duration.p90 if learned.duration else None,
        "error_s": learned.error_s,
    }


def _queue(store: ReportStore, run: Run, now: datetime) -> dict[str, Any] | None:
    if run.state is not RunState.QUEUED:
        return None
    ready = run.not_before is None or run.not_before <= now
    return {"ready": ready, "ahead": store.queue.ahead_of(run.id, now),
            "queued": store.queue.depths()[run.mode]}


def _pools(config: Config, running: list[Run]) -> dict[str, dict[str, int]]:
    """Each pool's workers and the runs it is running now."""
    busy = {mode.value: 0 for mode in Mode}  # foreground runs hold no pool's worker
    for other in running:
        if other.pool is not None and other.pool.value in busy:
            busy[other.pool.value] += 1
    return {mode.value: {"workers": config.pool(mode).workers, "running": busy[mode.value]}
            for mode in Mode}


def _limit(store: ReportStore, run: Run, running: list[Run]) -> dict[str, int] | None:
    """Its workflow's max_concurrent, and how many of its runs run now."""
    try:
        limit = store.get_workflow(run.workflow).max_concurrent
    except NotFound:
        return None
    if limit is None:
        return None
    return {"max_concurrent": limit,
            "running": sum(1 for other in running if other.workflow == run.workflow)}
