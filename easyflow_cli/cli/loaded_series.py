"""The price and carbon series the configuration names, read for a command that prices or
projects with them (`why`, `report advise`)."""

from __future__ import annotations

from easyflow_cli.core.config import Config
from easyflow_cli.core.forecast import Forecast, Unit
from easyflow_cli.core.plan_series import read_forecast


def loaded_tariff(config: Config) -> Forecast | None:
    """The `[costs] tariff` series, if one is configured (bad input if it cannot be read)."""
    if config.costs.tariff is None:
        return None
    return read_forecast(config.costs.tariff, Unit.PER_KWH)


def loaded_carbon(config: Config) -> Forecast | None:
    """The `[carbon] forecast` series, if one is configured (bad input if it cannot be read)."""
    if config.carbon.forecast is None:
        return None
    return read_forecast(config.carbon.forecast, Unit.G_CO2_PER_KWH)
