"""The forecast the eco planner works with: which file the configuration names for the pool's
`optimise` (the tariff for "cost", the carbon forecast for "carbon"), read into a `Series`.

The file shapes are `core/forecast_files.py`'s business; this module only chooses the file and the
terms a stretch of it is priced in. A file that cannot be read leaves the planner on the
off-peak window (the caller says why), it never stops a run from being queued.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from pathlib import Path

from easyflow_cli.core import forecast_files
from easyflow_cli.core.config import Config, Optimise
from easyflow_cli.core.eco_plan import Series
from easyflow_cli.core.errors import BadInput, SpecError
from easyflow_cli.core.forecast import Forecast, Unit
from easyflow_cli.core.forecast_files import SeriesKind
from easyflow_cli.core.model import Mode
from easyflow_cli.core.offpeak import OffPeakWindow
from easyflow_cli.core.planning import QueuePolicy

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
    """The series in the file at `path`, in any shape `core/forecast_files.py` reads: a carbon
    forecast when `unit` is gCO2/kWh, else a tariff. BadInput, one line, when it cannot be."""
    kind = SeriesKind.CARBON if unit is Unit.G_CO2_PER_KWH else SeriesKind.TARIFF
    try:
        return forecast_files.read_series(path, kind)
    except SpecError as exc:
        raise BadInput(str(exc)) from None
