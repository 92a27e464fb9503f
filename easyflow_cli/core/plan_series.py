"""The forecast the eco planner works with: which file the configuration names for the pool's
`optimise` (the tariff for "cost", the carbon forecast for "carbon"), read into a `Series`.

The file readers are `read_forecast`'s business; this module only chooses the file and the
terms a stretch of it is priced in. A file that cannot be read leaves the planner on the
off-peak window (the caller says why), it never stops a run from being queued.
"""

from __future__ import annotations

import csv
import logging
from datetime import UTC, timedelta
from pathlib import Path

from easyflow_cli.core.config import Config, Optimise
from easyflow_cli.core.eco_plan import Series
from easyflow_cli.core.errors import BadInput
from easyflow_cli.core.forecast import Forecast, Interval, Unit
from easyflow_cli.core.model import Mode
from easyflow_cli.core.offpeak import OffPeakWindow
from easyflow_cli.core.planning import QueuePolicy
from easyflow_cli.core.timeutil import parse_time

CSV_COLUMNS = ("start", "end", "value")

log = logging.getLogger("easyflow.plan")


def config_policy(config: Config) -> QueuePolicy:
    """How new runs are planned under `config`: its promotion margin, off-peak window, and the
    eco pool's optimise, max_delay and forecast."""
    eco = config.pool(Mode.ECO)
    return planning_policy(config, config.promote_within, config.off_peak, eco.optimise,
                           timedelta(seconds=eco.max_delay), series_path(config, eco.optimise))


def planning_policy(config: Config, promote_within: timedelta, off_peak: OffPeakWindow | None,
                    optimise: Optimise, max_delay: timedelta, path: Path | None) -> QueuePolicy:
    """A policy with its forecast read from `path` (a file that cannot be read is logged, and
    eco runs wait for the off-peak window)."""
    try:
        series = read_series(config, optimise, path)
    except BadInput as exc:
        log.warning("%s; eco runs are planned by the off-peak window", exc)
        series = None
    return QueuePolicy(promote_within, off_peak, optimise, max_delay, series, path)


def series_path(config: Config, optimise: Optimise) -> Path | None:
    if optimise is Optimise.COST:
        return config.costs.tariff
    if optimise is Optimise.CARBON:
        return config.carbon.forecast
    return None


def read_series(config: Config, optimise: Optimise, path: Path | None) -> Series | None:
    """The series at `path` in the terms of `optimise` (None for the off-peak window, or no
    file); BadInput when the file cannot be read."""
    if path is None or optimise is Optimise.OFF_PEAK:
        return None
    unit = Unit.G_CO2_PER_KWH if optimise is Optimise.CARBON else Unit.PER_KWH
    return Series(optimise, read_forecast(path, unit),
                  worker_hour_price=config.pool(Mode.ECO).price_per_hour,
                  currency=config.costs.currency, watts_per_core=config.costs.watts_per_core,
                  default_duration_s=config.costs.default_duration,
                  eco_workers=config.pool(Mode.ECO).workers)


def read_forecast(path: Path, unit: Unit) -> Forecast:
    """A `start,end,value` CSV (times ISO-8601; `value` in `unit`, or a `unit` column saying
    `multiplier`). The one place the planner reads a file: richer readers plug in here."""
    try:
        with path.open(newline="") as handle:
            rows = list(csv.reader(handle))
    except OSError as exc:
        raise BadInput(f"{path}: cannot read the forecast: {exc.strerror}") from None
    header = [name.strip().lower() for name in rows[0]] if rows else []
    if header[:3] != list(CSV_COLUMNS):
        raise BadInput(f"{path}:1: the header must start with {','.join(CSV_COLUMNS)}")
    intervals = [_interval(path, number, row) for number, row in enumerate(rows[1:], start=2)
                 if any(cell.strip() for cell in row)]
    if len(header) > 3 and header[3] == "unit" and any(
            row[3:4] == ["multiplier"] for row in rows[1:]):
        unit = Unit.MULTIPLIER
    try:
        return Forecast(unit, f"{path.name} (csv)", tuple(intervals))
    except ValueError as exc:
        raise BadInput(str(exc)) from None


def _interval(path: Path, number: int, row: list[str]) -> Interval:
    cells = dict(zip(CSV_COLUMNS, (cell.strip() for cell in row), strict=False))
    for name in CSV_COLUMNS:
        if not cells.get(name):
            raise BadInput(f"{path}:{number}: {name}: missing")
    try:
        start, end = (parse_time(cells[name]).astimezone(UTC) for name in ("start", "end"))
    except ValueError:
        raise BadInput(f"{path}:{number}: start/end: not an ISO-8601 time") from None
    try:
        value = float(cells["value"])
    except ValueError:
        raise BadInput(f"{path}:{number}: value: not a number: {cells['value']!r}") from None
    if end <= start:
        raise BadInput(f"{path}:{number}: end: not after start")
    return Interval(start, end, value)
