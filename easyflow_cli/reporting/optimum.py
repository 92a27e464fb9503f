"""The best possible placement of a replay's eco runs, by brute force: every start on a
one-minute grid between the run's arrival and the last start that keeps its deadline (or
`max_delay`), each run knowing its true duration and energy, and as many workers as it takes.
No planner can do better; `simulate` measures the planner's saving against it.

Every start's cost is the series' integral over the run, scaled by the run's energy (or its
pool's hourly price): for one run the scale is the same at every start, so the best start is
the one with the smallest integral. The integral is read off a cumulative sum on the grid, so
trying every minute of a 30-day replay stays well under a second.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

from easyflow_cli.core.eco_plan import Series, latest_start
from easyflow_cli.core.forecast import Forecast
from easyflow_cli.core.model import Mode
from easyflow_cli.reporting.replay import Placement, ReplayRun

STEP_S = 60


class MinuteIntegral:
    """The series' integral from its start, at every minute mark it covers."""

    def __init__(self, forecast: Forecast) -> None:
        self.origin = forecast.start.timestamp() if forecast.start else 0.0
        end = forecast.end.timestamp() if forecast.end else self.origin
        self.sums = [0.0]
        for value in _minute_values(forecast, self.origin, int((end - self.origin) // STEP_S)):
            if value is None:  # a gap: nothing past it is covered
                break
            self.sums.append(self.sums[-1] + value * STEP_S)

    def at(self, moment: float) -> float | None:
        """The integral up to `moment` (linear within a minute); None outside the series."""
        index = (moment - self.origin) / STEP_S
        step = int(index)
        if index < 0 or step >= len(self.sums) - 1:
            return None if index < 0 or index > len(self.sums) - 1 else self.sums[-1]
        return self.sums[step] + (index - step) * (self.sums[step + 1] - self.sums[step])

    def over(self, start: float, duration_s: float) -> float | None:
        begin, end = self.at(start), self.at(start + duration_s)
        return None if begin is None or end is None else end - begin

    def best_start(self, earliest: float, latest: float, duration_s: float) -> float | None:
        """The start in [earliest, latest] with the least integral over `duration_s`, tried
        at both ends and every minute mark between; the earliest of equal ones; None if the
        series covers none of them."""
        whole, part = divmod(duration_s / STEP_S, 1)
        span = int(whole)
        last_covered = len(self.sums) - 2 - span  # the last grid start whose end is covered
        first = max(0, int(-(-(earliest - self.origin) // STEP_S)))
        final = min(int((latest - self.origin) // STEP_S), last_covered)
        sums = self.sums
        tried = [(sums[k + span] + part * (sums[k + span + 1] - sums[k + span]) - sums[k],
                  self.origin + k * STEP_S) for k in range(first, final + 1)]
        for end in (earliest, latest):
            cost = self.over(end, duration_s)
            if cost is not None:
                tried.append((cost, end))
        return min(tried)[1] if tried else None


def best_starts(runs: Sequence[tuple[ReplayRun, Mode]], series: Series,
                max_delay: timedelta) -> list[Placement]:
    """Each eco run at its best start (other runs at their arrival)."""
    integral = MinuteIntegral(series.forecast)
    out = []
    for run, mode in runs:
        start = run.arrived
        if mode is Mode.ECO:
            duration = timedelta(seconds=run.duration_s)
            last = latest_start(run.arrived, run.deadline, duration, max_delay)
            best = integral.best_start(run.arrived.timestamp(), last.timestamp(), run.duration_s)
            if best is not None and best > run.arrived.timestamp():
                start = _moment(best, series.forecast)
        out.append(Placement(run, mode, start))
    return out


def _minute_values(forecast: Forecast, origin: float, steps: int) -> list[float | None]:
    """The series' value at each minute mark from `origin` (None where it has none)."""
    values: list[float | None] = [None] * steps
    for piece in forecast.intervals:
        first = max(0, int(-(-(piece.start.timestamp() - origin) // STEP_S)))
        last = min(steps, int(-(-(piece.end.timestamp() - origin) // STEP_S)))
        values[first:last] = [piece.value] * max(0, last - first)
    return values


def _moment(timestamp: float, forecast: Forecast) -> datetime:
    zone = forecast.start.tzinfo if forecast.start else None
    return datetime.fromtimestamp(timestamp, zone)


