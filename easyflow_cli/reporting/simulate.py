"""`easyflow simulate`: a period's real arrivals replayed under a policy against a price and a
carbon series, side by side with what happened and with the best possible.

Each run keeps its arrival, deadline and what it really took; the policy decides its mode, the
eco planner (`core/eco_plan.py`) its start from the p90 duration and energy learned from the
runs that had finished by then, and each pool's workers how long it waits for one. The
best possible is `reporting/optimum.py`'s.
"""

from __future__ import annotations

import heapq
import math
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from pathlib import Path
from typing import Any

from easyflow_cli.core import plan_series
from easyflow_cli.core.config import Config, Optimise
from easyflow_cli.core.costs import Prices, exact, run_cost
from easyflow_cli.core.eco_plan import JOULES_PER_KWH, Series, estimate_from, plan_eco_start
from easyflow_cli.core.forecast import Forecast, Unit, stretch_cost
from easyflow_cli.core.learned import LearnedDurations, RunSample, spread
from easyflow_cli.core.model import Mode, ModeReason, Trigger
from easyflow_cli.core.offpeak import OffPeakWindow
from easyflow_cli.core.planning import off_peak_start
from easyflow_cli.core.stats import median, percentile
from easyflow_cli.core.timeutil import to_iso
from easyflow_cli.reporting.optimum import best_starts
from easyflow_cli.reporting.replay import Placement, ReplayRun, replayed_runs
from easyflow_cli.storage.dialect import ReportStore

HISTORY_RUNS = 50  # as many as the planner reads (RunQueue.recent_successes)


class Policy(StrEnum):
    CURRENT = "current"      # each run in the mode it had, eco planned as configured
    REAL_TIME = "real-time"  # every run at once
    ADVISED = "advised"      # runs nobody waits for moved to eco, planned as configured


@dataclass(frozen=True)
class Pricing:
    """What a run costs and emits where and when it runs."""

    prices: Prices
    tariff_window: OffPeakWindow | None
    watts_per_core: float
    tariff: Forecast | None = None
    carbon: Forecast | None = None

    def energy_kwh(self, run: ReplayRun) -> float:
        joules = run.energy_j if run.energy_j is not None else run.cpu_s * self.watts_per_core
        return joules / JOULES_PER_KWH

    def cost(self, run: ReplayRun, mode: Mode, start: datetime) -> float:
        """Under the tariff where it covers the run (per kWh of its energy, or the multiplier on
        its pool's price), else the pools' prices; plus its CPU time."""
        cpu = run.cpu_s / 3600 * self.prices.cpu_hour_price
        if self.tariff is not None:
            priced = stretch_cost(self.tariff, start, start + timedelta(seconds=run.duration_s),
                                  energy_kwh=self.energy_kwh(run),
                                  worker_hour_price=self.prices.worker_hour_price(mode, False))
            if priced is not None:
                return priced + cpu
        off_peak = self.tariff_window.contains(start) if self.tariff_window else False
        return run_cost(self.prices, mode, off_peak, run.duration_s, run.cpu_s)

    def grams(self, run: ReplayRun, start: datetime) -> float | None:
        if self.carbon is None:
            return None
        return stretch_cost(self.carbon, start, start + timedelta(seconds=run.duration_s),
                            energy_kwh=self.energy_kwh(run), worker_hour_price=0.0)


def mode_under(policy: Policy, run: ReplayRun) -> Mode:
    if policy is Policy.REAL_TIME:
        return Mode.REAL_TIME
    if run.mode_reason is ModeReason.PROMOTED:
        return Mode.ECO  # planned eco, promoted as its deadline came near
    if policy is Policy.ADVISED and nobody_waits(run):
        return Mode.ECO
    return run.mode


def nobody_waits(run: ReplayRun) -> bool:
    """A run no one was waiting for: fired by a schedule (or catch-up, or retry), or balanced
    with no deadline. `report advise` measures this per workflow; this is its plain form."""
    if run.trigger in (Trigger.SCHEDULE, Trigger.CATCH_UP, Trigger.RETRY):
        return True
    return run.mode is Mode.BALANCED and run.deadline is None


class LearnedSoFar:
    """Each workflow's successful runs that had finished by a moment, newest first."""

    def __init__(self) -> None:
        self.pending: list[tuple[datetime, int, ReplayRun]] = []
        self.done: dict[str, list[RunSample]] = defaultdict(list)

    def add(self, run: ReplayRun) -> None:
        if run.succeeded:
            finish = run.started + timedelta(seconds=run.duration_s)
            heapq.heappush(self.pending, (finish, run.id, run))

    def before(self, workflow: str, moment: datetime) -> list[RunSample]:
        while self.pending and self.pending[0][0] <= moment:
            finish, _, run = heapq.heappop(self.pending)
            samples = self.done[run.workflow]
            samples.insert(0, RunSample(finish, run.duration_s, run.cpu_s, run.energy_j))
            del samples[HISTORY_RUNS:]
        return self.done[workflow]


def learned(newest_first: list[RunSample]) -> LearnedDurations:
    """`learn` without its accuracy, which the planner does not read and a replay of a
    thousand arrivals cannot afford to measure at each of them."""
    if not newest_first:
        return LearnedDurations(0, None, None, None, None, None, None)
    energies = [s.energy_j for s in newest_first if s.energy_j is not None]
    return LearnedDurations(
        len(newest_first), newest_first[-1].finished_at, newest_first[0].finished_at,
        spread([s.duration_s for s in newest_first]), spread([s.cpu_s for s in newest_first]),
        spread(energies) if energies else None, None)


def planned_start(run: ReplayRun, series: Series | None, config: Config,
                  history: LearnedSoFar) -> datetime:
    """When the eco planner would let the run start, with what it had learned by then."""
    samples = history.before(run.workflow, run.arrived)
    typical = median(s.duration_s for s in samples) if samples else None
    eco = config.pool(Mode.ECO)
    if series is not None:
        chosen = plan_eco_start(series, estimate_from(learned(samples), typical, series),
                                now=run.arrived, deadline=run.deadline,
                                max_delay=timedelta(seconds=eco.max_delay),
                                off_peak=config.off_peak, margin=config.promote_within)
        return chosen.not_before or run.arrived if chosen else run.arrived
    if config.off_peak is None:
        return run.arrived
    wait = timedelta(seconds=typical) if typical is not None else None
    return off_peak_start(config.off_peak, run.arrived, run.deadline, wait, None) or run.arrived


def placed(runs: Sequence[ReplayRun], policy: Policy, series: Series | None,
           config: Config) -> list[Placement]:
    """Each run's mode and when it may start, then each pool's workers taking the ready runs
    as the daemon does: a run starts when it may and a worker of its pool is free."""
    history = LearnedSoFar()
    ready: dict[Mode, list[tuple[float, ReplayRun]]] = {mode: [] for mode in Mode}
    for run in runs:
        mode = mode_under(policy, run)
        at = planned_start(run, series, config, history) if mode is Mode.ECO else run.arrived
        ready[mode].append((at.timestamp(), run))
        history.add(run)
    return [Placement(run, mode, datetime.fromtimestamp(start, run.arrived.tzinfo))
            for mode in Mode
            for start, run in served(ready[mode], config.pool(mode).workers)]


def served(ready: list[tuple[float, ReplayRun]], workers: int) -> list[tuple[float, ReplayRun]]:
    """When each run starts in a pool of `workers`: whenever a worker is free, it takes the
    ready run with the earliest deadline, then the first in (the queue's order)."""
    ready.sort(key=lambda item: item[0])
    free = [0.0] * workers
    waiting: list[tuple[float, float, int, ReplayRun]] = []
    out, index, moment = [], 0, -math.inf
    while index < len(ready) or waiting:
        moment = max(moment, heapq.heappop(free))  # no one starts before a run already did
        if not waiting and ready[index][0] > moment:
            moment = ready[index][0]
        while index < len(ready) and ready[index][0] <= moment:
            at, run = ready[index]
            deadline = run.deadline.timestamp() if run.deadline else math.inf
            heapq.heappush(waiting, (deadline, run.arrived.timestamp(), run.id, run))
            index += 1
        run = heapq.heappop(waiting)[3]
        out.append((moment, run))
        heapq.heappush(free, moment + run.duration_s)
    return out


def as_it_happened(runs: Sequence[ReplayRun]) -> list[Placement]:
    return [Placement(run, run.mode, run.started) for run in runs]


def summary(placements: Sequence[Placement], pricing: Pricing,
            max_delay: timedelta) -> dict[str, Any]:
    """Cost, carbon, deadline misses, eco runs started later than max_delay, and waits."""
    grams = [pricing.grams(p.run, p.start) for p in placements]
    waits = sorted((p.start - p.run.arrived).total_seconds() for p in placements)
    misses = sum(1 for p in placements if p.run.deadline and p.finish > p.run.deadline)
    late = sum(1 for p in placements if p.mode is Mode.ECO and p.run.deadline is None
               and p.start - p.run.arrived > max_delay)
    return {
        "cost": exact(sum(pricing.cost(p.run, p.mode, p.start) for p in placements)),
        "carbon_g": exact(sum(g for g in grams if g is not None)) if pricing.carbon else None,
        "deadline_misses": misses,
        "late_starts": late,
        "wait_p50_s": percentile(waits, 50) if waits else None,
        "wait_p90_s": percentile(waits, 90) if waits else None,
        "wait_max_s": waits[-1] if waits else None,
        "eco_runs": sum(1 for p in placements if p.mode is Mode.ECO),
    }


def simulate(runs: Sequence[ReplayRun], policy: Policy, series: Series | None,
             pricing: Pricing, config: Config, period: tuple[datetime, datetime]
             ) -> dict[str, Any]:
    """The report: what happened, the policy's projection, and the best possible."""
    max_delay = timedelta(seconds=config.pool(Mode.ECO).max_delay)
    projected = placed(runs, policy, series, config)
    report: dict[str, Any] = {
        "period": {"since": to_iso(period[0]), "until": to_iso(period[1])},
        "runs": len(runs), "policy": policy.value,
        "optimise": series.optimise.value if series else "off_peak",
        "series": {"tariff": _source(pricing.tariff), "carbon": _source(pricing.carbon)},
        "currency": pricing.prices.currency,
        "actual": summary(as_it_happened(runs), pricing, max_delay),
        "projected": summary(projected, pricing, max_delay),
        "best_possible": None,
    }
    if series is not None:
        best = best_starts([(p.run, p.mode) for p in projected], series, max_delay)
        report["best_possible"] = summary(best, pricing, max_delay)
        report["planner_share_of_best"] = share_of_best(projected, best, series, pricing)
    return report


def objective(placements: Sequence[Placement], series: Series, pricing: Pricing) -> float:
    """What the planner minimises, summed: cost, or grams of CO2."""
    if series.forecast.unit is Unit.G_CO2_PER_KWH:
        return sum(pricing.grams(p.run, p.start) or 0.0 for p in placements)
    return sum(pricing.cost(p.run, p.mode, p.start) for p in placements)


def share_of_best(projected: Sequence[Placement], best: Sequence[Placement], series: Series,
                  pricing: Pricing) -> dict[str, Any]:
    """The planner's saving over starting every run at once, as a share of the best possible
    saving, in the planner's own objective."""
    at_once = [Placement(p.run, p.mode, p.run.arrived) for p in projected]
    base = objective(at_once, series, pricing)
    planner, optimum = objective(projected, series, pricing), objective(best, series, pricing)
    possible = base - optimum
    return {"at_once": exact(base), "planner": exact(planner), "best": exact(optimum),
            "share": None if possible <= 0 else round((base - planner) / possible, 4)}


def _source(forecast: Forecast | None) -> str | None:
    return None if forecast is None else forecast.source


def simulate_period(store: ReportStore, config: Config, policy: Policy,
                    period: tuple[datetime, datetime], *, tariff: Path | None = None,
                    carbon: Path | None = None) -> dict[str, Any]:
    """`easyflow simulate`: the period's runs replayed under `policy`, priced by the tariff and
    carbon files given (else the config's)."""
    prices = read_forecast(tariff or config.costs.tariff, Unit.PER_KWH)
    grid = read_forecast(carbon or config.carbon.forecast, Unit.G_CO2_PER_KWH)
    pricing = Pricing(Prices.from_config(config), config.tariff_window,
                      config.costs.watts_per_core, prices, grid)
    optimise = planned_optimise(config.pool(Mode.ECO).optimise, tariff, carbon)
    forecast = {Optimise.COST: prices, Optimise.CARBON: grid}.get(optimise)
    series = None if forecast is None else Series(
        optimise, forecast, worker_hour_price=config.pool(Mode.ECO).price_per_hour,
        currency=config.costs.currency, watts_per_core=config.costs.watts_per_core,
        default_duration_s=config.costs.default_duration)
    runs = replayed_runs(store, *period)
    return simulate(runs, policy, series, pricing, config, period)


def planned_optimise(configured: Optimise, tariff: Path | None, carbon: Path | None) -> Optimise:
    """What the replayed planner minimises: the configured objective, unless that is the
    off-peak window and a series was given to simulate (the tariff first)."""
    if configured is not Optimise.OFF_PEAK:
        return configured
    if tariff is not None:
        return Optimise.COST
    return Optimise.CARBON if carbon is not None else Optimise.OFF_PEAK


def read_forecast(path: Path | None, unit: Unit) -> Forecast | None:
    return None if path is None else plan_series.read_forecast(path, unit)
