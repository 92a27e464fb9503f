"""The price and carbon series the configuration names, read for a command that prices or
projects with them (`why`, `report advise`): any shape `core/forecast_files.py` reads."""

from __future__ import annotations

from typing import TYPE_CHECKING

from easyflow_cli.core.config import Config

if TYPE_CHECKING:
    from easyflow_cli.core.forecast import Forecast

# The readers (and the csv module) are imported only when a series is configured: `why` on a
# box without one answers as fast as the process starts.


def loaded_tariff(config: Config) -> Forecast | None:
    """The `[costs] tariff` series, if one is configured (bad input if it cannot be read)."""
    if config.costs.tariff is None:
        return None
    from easyflow_cli.core.forecast_files import SeriesKind, read_series

    return read_series(config.costs.tariff, SeriesKind.TARIFF)


def loaded_carbon(config: Config) -> Forecast | None:
    """The `[carbon] forecast` series, if one is configured (bad input if it cannot be read)."""
    if config.carbon.forecast is None:
        return None
    from easyflow_cli.core.forecast_files import SeriesKind, read_series

    return read_series(config.carbon.forecast, SeriesKind.CARBON)
