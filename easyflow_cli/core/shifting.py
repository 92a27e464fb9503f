"""What moving a run within a series buys: the series' mean over a run started the moment it
arrives, against the same run started where a planner would put it.

Pure. Arrivals are spread over the series (one at each interval start that leaves room for the
run), so the figure is what a workflow arriving at any time of the series would see.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from easyflow_cli.core.config import Config, Optimise
from easyflow_cli.core.forecast import Forecast
from easyflow_cli.core.model import Mode

# Where a planner starts a run that arrived at a moment; None where it would not move it.
StartChooser = Callable[[datetime], datetime | None]


@dataclass(frozen=True)
class Shift:
    """Mean series values over a run: at once, and where it was planned; over `arrivals`."""

    at_once: float
    planned: float
    arrivals: int


def shift_means(series: Forecast, duration_s: float, choose: StartChooser) -> Shift | None:
    """The means over every arrival whose run the series covers both ways; None if none is."""
    length = timedelta(seconds=duration_s)
    at_once, planned = [], []
    for arrival in (interval.start for interval in series.intervals):
        now_mean = series.mean_over(arrival, arrival + length)
        start = choose(arrival) or arrival
        later_mean = series.mean_over(start, start + length)
        if now_mean is not None and later_mean is not None:
            at_once.append(now_mean)
            planned.append(later_mean)
    if not at_once:
        return None
    return Shift(sum(at_once) / len(at_once), sum(planned) / len(planned), len(at_once))


def lowest_start(series: Forecast, arrival: datetime, within_s: float,
                 duration_s: float) -> datetime | None:
    """The start in [arrival, arrival + within] whose run has the lowest mean (a value can only
    change at an interval start, so those are the candidates); None where none is covered."""
    length = timedelta(seconds=duration_s)
    latest = arrival + timedelta(seconds=within_s)
    candidates = [arrival, *series.boundaries(arrival, latest + timedelta(microseconds=1))]
    scored = [(mean, start) for start in candidates
              if (mean := series.mean_over(start, start + length)) is not None]
    return min(scored)[1] if scored else None


def eco_start_chooser(config: Config, duration_s: float, *, tariff: Forecast | None,
                      carbon: Forecast | None) -> StartChooser:
    """Where eco starts a run that arrives at a moment: in the lowest window of the series it
    optimises, within `max_delay`; where that series is missing or runs out, at the off-peak
    window (or at once without one)."""
    eco = config.pool(Mode.ECO)
    window = eco.off_peak
    series = {Optimise.COST: tariff, Optimise.CARBON: carbon}.get(eco.optimise)

    def choose(arrival: datetime) -> datetime | None:
        if series is not None:
            start = lowest_start(series, arrival, eco.max_delay, duration_s)
            if start is not None:
                return start
        return window.next_start(arrival) if window is not None else None

    return choose
