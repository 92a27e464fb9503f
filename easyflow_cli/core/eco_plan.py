"""When an eco run (or an eco batch) should start: in the window of a price or carbon forecast
where its learned p90 duration and energy cost least, finishing before its deadline (or starting
within `max_delay`); where the forecast runs out, at the fixed off-peak window.

Pure: the forecast, the estimate and `now` are passed in. The window chosen and the reason for
it are what the queue records (`not_before`, `not_before_reason`).
"""

from __future__ import annotations

from bisect import bisect_right
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal

from easyflow_cli.core.config import Optimise
from easyflow_cli.core.forecast import Forecast, Unit, stretch_cost
from easyflow_cli.core.learned import LearnedDurations
from easyflow_cli.core.offpeak import OffPeakWindow

JOULES_PER_KWH = 3.6e6
CURRENCY_SYMBOLS = {"USD": "$", "EUR": "€", "GBP": "£"}
DEFAULT_MAX_DELAY = timedelta(hours=24)


@dataclass(frozen=True, slots=True)
class RunEstimate:
    """What the planner expects of a run (or a batch run back to back): how long it takes and
    the energy it uses, at p90."""

    duration: timedelta
    energy_kwh: float


class Cumulative:
    """A series' running integral at its interval starts, so that the mean over any stretch
    is two look-ups: what lets the planner try every candidate start of a run cheaply. Only
    for a series without gaps (`whole`); one with gaps is asked interval by interval."""

    def __init__(self, forecast: Forecast) -> None:
        pieces = forecast.intervals
        self.starts = [p.start.timestamp() for p in pieces]
        self.values = [p.value for p in pieces]
        self.end = pieces[-1].end.timestamp() if pieces else 0.0
        self.whole = all(a.end == b.start for a, b in zip(pieces, pieces[1:], strict=False))
        self.sums = [0.0]
        for piece in pieces:
            seconds = (piece.end - piece.start).total_seconds()
            self.sums.append(self.sums[-1] + piece.value * seconds)

    def integral_to(self, moment: float) -> float:
        index = bisect_right(self.starts, moment) - 1
        return self.sums[index] + (moment - self.starts[index]) * self.values[index]

    def mean(self, start: float, end: float) -> float | None:
        if not self.starts or start < self.starts[0] or end > self.end:
            return None
        if end <= start:
            return self.values[bisect_right(self.starts, start) - 1]
        return (self.integral_to(end) - self.integral_to(start)) / (end - start)


@dataclass(frozen=True)
class Series:
    """The series eco runs are planned against, and how a stretch of it is priced."""

    optimise: Optimise
    forecast: Forecast
    worker_hour_price: float = 0.0  # the eco pool's, for a tariff that is a multiplier
    currency: str = "USD"
    # How a run is estimated whose energy was never measured, or with no history at all.
    watts_per_core: float = 15.0
    default_duration_s: float = 60.0
    eco_workers: int = 1  # how many runs of a batch run side by side
    cumulative: Cumulative = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "cumulative", Cumulative(self.forecast))


def estimate_from(learned: LearnedDurations, typical_s: float | None,
                  series: Series) -> RunEstimate:
    """p90 duration and energy (measured, else CPU time at the watts per core); with too few
    runs, the typical duration (else the default) at one busy core."""
    watts = series.watts_per_core
    if not learned.enough or learned.duration is None or learned.cpu is None:
        seconds = typical_s if typical_s is not None else series.default_duration_s
        return RunEstimate(timedelta(seconds=seconds), seconds * watts / JOULES_PER_KWH)
    if learned.energy is not None:
        energy_kwh = learned.energy.p90 / JOULES_PER_KWH
    else:
        energy_kwh = learned.cpu.p90 * watts / JOULES_PER_KWH
    return RunEstimate(timedelta(seconds=learned.duration.p90), energy_kwh)


@dataclass(frozen=True, slots=True)
class Window:
    start: datetime
    end: datetime
    cost: float                # in the series' terms: currency, or grams of CO2
    cost_now: float | None     # the same run started at once, where the series covers it


@dataclass(frozen=True, slots=True)
class EcoStart:
    """The planner's answer: when the run may start (None: at once), and why."""

    not_before: datetime | None
    reason: str


def latest_start(now: datetime, deadline: datetime | None, duration: timedelta,
                 max_delay: timedelta, margin: timedelta = timedelta(0)) -> datetime:
    """The last start that keeps the eco objective: finish by the deadline with `margin` to
    spare (a run may take longer than its p90; the margin is the one promotion keeps), or,
    without a deadline, start within `max_delay`."""
    last = now + max_delay if deadline is None else deadline - duration - margin
    return max(now, last)


def window_cost(series: Series, start: datetime, estimate: RunEstimate) -> float | None:
    """What the run costs started at `start` (as `forecast.stretch_cost` has it)."""
    end = start + estimate.duration
    if not series.cumulative.whole:
        return stretch_cost(series.forecast, start, end, energy_kwh=estimate.energy_kwh,
                            worker_hour_price=series.worker_hour_price)
    mean = series.cumulative.mean(start.timestamp(), end.timestamp())
    if mean is None:
        return None
    if series.forecast.unit is Unit.MULTIPLIER:
        return mean * series.worker_hour_price * estimate.duration.total_seconds() / 3600
    return mean * estimate.energy_kwh


def best_window(series: Series, estimate: RunEstimate, now: datetime,
                last_start: datetime) -> Window | None:
    """The cheapest start in [now, last_start] whose whole run the forecast covers; the
    earliest of equal ones. None when no such start exists.

    The series is constant between its boundaries, so a run's cost moves linearly with its
    start until its start or its end crosses one: the best start is `now`, `last_start`, a
    boundary, or a boundary less the duration."""
    best: Window | None = None
    for start in candidate_starts(series.forecast, now, last_start, estimate.duration):
        cost = window_cost(series, start, estimate)
        if cost is not None and (best is None or cost < best.cost - 1e-12):
            best = Window(start, start + estimate.duration, cost, None)
    if best is None:
        return None
    return Window(best.start, best.end, best.cost, window_cost(series, now, estimate))


def candidate_starts(forecast: Forecast, now: datetime, last_start: datetime,
                     duration: timedelta) -> list[datetime]:
    edges = set(forecast.boundaries(now, last_start + duration))
    if forecast.end is not None:
        edges.add(forecast.end)
    starts = {now, last_start}
    starts.update(edge for edge in edges if now <= edge <= last_start)
    starts.update(edge - duration for edge in edges if now <= edge - duration <= last_start)
    return sorted(starts)


def plan_eco_start(series: Series | None, estimate: RunEstimate, *, now: datetime,
                   deadline: datetime | None, max_delay: timedelta,
                   off_peak: OffPeakWindow | None,
                   margin: timedelta = timedelta(0)) -> EcoStart | None:
    """Where the forecast has a window for the run, that window; else the fixed off-peak
    window (None when there is none, or waiting for it would miss the deadline)."""
    if series is not None:
        last = latest_start(now, deadline, estimate.duration, max_delay, margin)
        window = best_window(series, estimate, now, last)
        if window is not None:
            return EcoStart(window.start if window.start > now else None,
                            window_reason(series, window, now))
    return off_peak_fallback(off_peak, now, deadline, estimate.duration, series)


def off_peak_fallback(window: OffPeakWindow | None, now: datetime, deadline: datetime | None,
                      duration: timedelta, series: Series | None) -> EcoStart | None:
    if window is None:
        return None
    start = window.next_start(now)
    if deadline is not None and start + duration > deadline:
        return None
    why = f"off-peak window {window.text()}"
    if series is not None:
        why += f" (no window in {series.forecast.source} before the run must start)"
    return EcoStart(start if start > now else None, why)


def window_reason(series: Series, window: Window, now: datetime) -> str:
    """`cheapest window 03:00–04:00 CET, $0.0021 vs $0.0065 now`."""
    adjective = "cleanest" if series.forecast.unit is Unit.G_CO2_PER_KWH else "cheapest"
    local = f"{window.start.astimezone():%H:%M}–{window.end.astimezone():%H:%M %Z}"
    text = f"{adjective} window {local}, {amount(series, window.cost)}"
    if window.start <= now:
        return text + ", starting now"
    if window.cost_now is not None:
        text += f" vs {amount(series, window.cost_now)} now"
    return text


def amount(series: Series, value: float) -> str:
    figure = format(Decimal(f"{value:.2g}"), "f")
    if series.forecast.unit is Unit.G_CO2_PER_KWH:
        return f"{figure} g CO2"
    symbol = CURRENCY_SYMBOLS.get(series.currency)
    if symbol is None:
        return f"{figure} {series.currency}"
    return f"-{symbol}{figure[1:]}" if figure.startswith("-") else f"{symbol}{figure}"


def batch_estimate(each: RunEstimate, runs: int, workers: int) -> RunEstimate:
    """A batch of `runs` planned as one: the eco workers share them and run theirs back to
    back, so the batch lasts as long as the runs of its busiest worker."""
    per_worker = -(-runs // max(1, workers))
    return RunEstimate(each.duration * per_worker, each.energy_kwh * runs)
