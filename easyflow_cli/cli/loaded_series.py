"""The price and carbon series the configuration names, read for a command that prices or
projects with them (`why`, `report advise`): any shape `core/forecast_files.py` reads."""

from __future__ import annotations

from easyflow_cli.core.config import Config
from easyflow_cli.core.forecast import Forecast
from easyflow_cli.core.forecast_files import SeriesKind, read_series


def loaded_tariff(config: Config) -> Forecast | None:
    """The `[costs] tariff` series, if one is configured (bad input if it cannot be read)."""
    if config.costs.tariff is None:
        return None
    return read_series(config.costs.tariff, SeriesKind.TARIFF)


def loaded_carbon(config: Config) -> Forecast | None:
    """The `[carbon] forecast` series, if one is configured (bad input if it cannot be read)."""
    if config.carbon.forecast is None:
        return None
    return read_series(config.carbon.forecast, SeriesKind.CARBON)
