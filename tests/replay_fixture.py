"""Replay fixtures: a 30-day workload and the shapes of real price and carbon series, made from
a seed so that a figure can be made again.

- `agile_like`: half-hourly prices per kWh in the shape of Octopus Agile: cheap nights, a
  16:00-19:00 peak, days that differ, and windy nights and sunny middays below zero.
- `uk_carbon_like`: half-hourly grid intensity in the shape of the UK's: lower at night and
  higher at the evening peak, on top of a wind that changes over days (40-350 g/kWh).
- `workload`: about 1,000 runs over 30 days of four workflows, scheduled eco runs with and
  without deadlines, manual real-time runs and balanced backfills; durations that change
  half-way.

`python -m tests.replay_fixture` prints the planner's saving against the best possible on
both series shapes (the figures of the closing note) and how long a replay takes.
"""

from __future__ import annotations

import math
import random
import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta

from easyflow_cli.core.config import Optimise, load_config
from easyflow_cli.core.costs import Prices
from easyflow_cli.core.eco_plan import Series
from easyflow_cli.core.forecast import Forecast, Interval, Unit
from easyflow_cli.core.model import Mode, ModeReason, Trigger
from easyflow_cli.reporting.replay import ReplayRun
from easyflow_cli.reporting.simulate import Policy, Pricing, simulate

START = datetime(2026, 10, 1, tzinfo=UTC)
DAYS = 30
HALF_HOUR = timedelta(minutes=30)


def half_hours(start: datetime, days: int) -> list[datetime]:
    return [start + i * HALF_HOUR for i in range(days * 48 + 96)]  # two days past the period


def agile_like(start: datetime = START, days: int = DAYS, seed: int = 1) -> Forecast:
    rng = random.Random(seed)
    values = []
    for moment in half_hours(start, days):
        hour = moment.hour + moment.minute / 60
        if moment.hour == 0 and moment.minute == 0:
            level, windy, sunny = rng.uniform(0.8, 1.3), rng.random() < 0.25, rng.random() < 0.15
        price = 0.18 * level
        if 16 <= hour < 19:
            price += 0.17 * level
        elif hour < 6 or hour >= 23:
            price -= 0.09 * level
        if windy and 1 <= hour < 5:
            price = rng.uniform(-0.05, -0.005)
        if sunny and 12 <= hour < 15:
            price = rng.uniform(-0.03, 0.01)
        values.append(round(price + rng.gauss(0, 0.01), 4))
    return _series(start, days, values, Unit.PER_KWH, "agile-like")


def uk_carbon_like(start: datetime = START, days: int = DAYS, seed: int = 2) -> Forecast:
    rng = random.Random(seed)
    wind, values = 0.5, []
    for moment in half_hours(start, days):
        hour = moment.hour + moment.minute / 60
        wind = min(1.0, max(0.0, wind + rng.gauss(0, 0.04)))
        daily = 40 * math.sin((hour - 11) / 24 * 2 * math.pi) + (30 if 16 <= hour < 19 else 0)
        values.append(round(max(40.0, 330 - 260 * wind + daily + rng.gauss(0, 8)), 1))
    return _series(start, days, values, Unit.G_CO2_PER_KWH, "uk-carbon-like")


def _series(start: datetime, days: int, values: list[float], unit: Unit, name: str) -> Forecast:
    return Forecast(unit, name, tuple(Interval(m, m + HALF_HOUR, v)
                                      for m, v in zip(half_hours(start, days), values,
                                                      strict=True)))


def workload(start: datetime = START, days: int = DAYS, seed: int = 3) -> list[ReplayRun]:
    """(workflow, trigger, mode, deadline after, per day, seconds, cores)."""
    rng = random.Random(seed)
    kinds = [
        ("nightly-etl", Trigger.SCHEDULE, Mode.ECO, timedelta(hours=10), 1, 2400, 2.0),
        ("hourly-sync", Trigger.SCHEDULE, Mode.ECO, None, 23, 180, 1.0),
        ("reports", Trigger.MANUAL, Mode.REAL_TIME, None, 5, 30, 1.0),
        ("backfill", Trigger.MANUAL, Mode.BALANCED, None, 5, 1200, 1.0),
    ]
    runs = []
    for day in range(days):
        slower = 1.5 if day >= days // 2 else 1.0  # the jobs change half-way
        for workflow, trigger, mode, within, per_day, seconds, cores in kinds:
            for _ in range(per_day):
                arrived = start + timedelta(days=day, seconds=rng.uniform(0, 86400))
                if workflow == "nightly-etl":
                    arrived = start + timedelta(days=day, hours=18, seconds=rng.uniform(0, 600))
                duration = seconds * slower * rng.uniform(0.8, 1.2)
                runs.append(ReplayRun(
                    0, workflow, trigger, mode,
                    ModeReason.SCHEDULE if trigger is Trigger.SCHEDULE else ModeReason.MANUAL,
                    arrived + within if within else None, arrived, arrived, duration,
                    duration * cores, None, True))
    runs.sort(key=lambda r: r.arrived)
    return [replace(run, id=number) for number, run in enumerate(runs, start=1)]


def figures() -> None:
    config = load_config(None, {})
    runs = workload()
    period = (START, START + timedelta(days=DAYS))
    for optimise, forecast in ((Optimise.COST, agile_like()), (Optimise.CARBON, uk_carbon_like())):
        series = Series(optimise, forecast, watts_per_core=config.costs.watts_per_core)
        tariff = forecast if optimise is Optimise.COST else None
        carbon = forecast if optimise is Optimise.CARBON else None
        pricing = Pricing(Prices.from_config(config), None, config.costs.watts_per_core,
                          tariff, carbon)
        began = time.perf_counter()
        report = simulate(runs, Policy.CURRENT, series, pricing, config, period)
        took = time.perf_counter() - began
        share = report["planner_share_of_best"]
        print(f"{forecast.source}: {len(runs)} runs, at once {share['at_once']:.4g}, planner "
              f"{share['planner']:.4g}, best {share['best']:.4g}: share {share['share']:.1%}; "
              f"deadline misses planner {report['projected']['deadline_misses']}, best "
              f"{report['best_possible']['deadline_misses']}, late starts "
              f"{report['projected']['late_starts']}; simulate {took:.2f} s")


if __name__ == "__main__":
    figures()
