"""What a finished run cost, under a tariff where one is loaded, its carbon, and its receipt.

Without a tariff a run is priced by the pools' per-hour prices (`costs.py`), from its
measurements, whenever it is looked at: a price change re-prices history. A tariff's prices
change by the hour and its file is replaced as time moves on, so a run priced by one is priced
once, when it ends, from the series loaded then, and keeps that price (`Charges`, stored with
the run): per kWh × its energy, or the multiplier × its pool's worker-hour price × its
duration, plus its CPU time × `cpu_hour_price`. Its carbon is its energy × the grid's carbon
intensity over the time it ran. "Run at once in real-time" is the same work started when the
run was submitted, in the real-time pool: the receipt's baseline.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol

from easyflow_cli.core.costs import Prices, baseline_cost, energy_wh, exact, run_cost
from easyflow_cli.core.forecast import Forecast, stretch_cost
from easyflow_cli.core.model import Mode, Run
from easyflow_cli.core.timeutil import to_iso

JOULES_PER_KWH = 3.6e6
FLAT_PRICES = "pool prices"  # the source of a price that no tariff set


@dataclass(frozen=True)
class Pricing:
    """What a run that ends now is priced with: the pools' prices, the energy estimate, and
    the series loaded now (None where none is configured, or its file could not be read)."""

    prices: Prices
    watts_per_core: float
    tariff: Forecast | None = None
    carbon: Forecast | None = None

    @property
    def has_series(self) -> bool:
        return self.tariff is not None or self.carbon is not None


class PricingSource(Protocol):
    """Whoever holds the series a run is priced with as it ends (the daemon's, or a foreground
    run's); read outside the transaction that records the end."""

    def current(self) -> Pricing: ...


@dataclass(frozen=True, slots=True)
class Stretch:
    """A run that ended, as its charges need it."""

    mode: Mode
    enqueued_at: datetime
    began_at: datetime
    duration_s: float
    cpu_s: float
    energy_j: float | None


@dataclass(frozen=True, slots=True)
class Charges:
    """What a run was charged as it ended, from the series loaded then; None where no series
    covered both the time it ran and the time it would have run at once."""

    tariff_cost: float | None = None
    tariff_baseline_cost: float | None = None
    tariff_source: str | None = None
    carbon_g: float | None = None
    baseline_carbon_g: float | None = None
    carbon_source: str | None = None


def energy_kwh(stretch: Stretch, watts_per_core: float) -> float:
    """Measured where it was, else the estimate from CPU time (as the reports count it)."""
    if stretch.energy_j is not None:
        return stretch.energy_j / JOULES_PER_KWH
    return energy_wh(stretch.cpu_s, watts_per_core) / 1000


def charges_of(pricing: Pricing, stretch: Stretch) -> Charges:
    """The run's price under the tariff and its carbon, each with what it would have been run
    at once in real-time."""
    tariff_cost = tariff_baseline = carbon = baseline_carbon = None
    kwh = energy_kwh(stretch, pricing.watts_per_core)
    ran, at_once = _stretches(stretch)
    if pricing.tariff is not None:
        tariff_cost, tariff_baseline = _both(
            _tariff_cost(pricing, stretch.mode, ran, kwh, stretch.cpu_s),
            _tariff_cost(pricing, Mode.REAL_TIME, at_once, kwh, stretch.cpu_s))
    if pricing.carbon is not None:
        carbon, baseline_carbon = _both(pricing.carbon.mean_over(*ran),
                                        pricing.carbon.mean_over(*at_once))
        carbon, baseline_carbon = _times(carbon, kwh), _times(baseline_carbon, kwh)
    return Charges(
        tariff_cost, tariff_baseline,
        pricing.tariff.source if tariff_cost is not None and pricing.tariff else None,
        carbon, baseline_carbon,
        pricing.carbon.source if carbon is not None and pricing.carbon else None)


def _stretches(stretch: Stretch) -> tuple[tuple[datetime, datetime], tuple[datetime, datetime]]:
    """When it ran, and when it would have run had it started as it was submitted."""
    length = timedelta(seconds=stretch.duration_s)
    return ((stretch.began_at, stretch.began_at + length),
            (stretch.enqueued_at, stretch.enqueued_at + length))


def _tariff_cost(pricing: Pricing, mode: Mode, span: tuple[datetime, datetime], kwh: float,
                 cpu_s: float) -> float | None:
    assert pricing.tariff is not None
    cost = stretch_cost(pricing.tariff, *span, energy_kwh=kwh,
                        worker_hour_price=pricing.prices.worker_hour_price(mode, False))
    return None if cost is None else cost + cpu_s / 3600 * pricing.prices.cpu_hour_price


def _both(first: float | None, second: float | None) -> tuple[float | None, float | None]:
    """Both, or neither: a receipt compares like with like."""
    return (first, second) if first is not None and second is not None else (None, None)


def _times(mean: float | None, kwh: float) -> float | None:
    return None if mean is None else mean * kwh


# --------------------------------------------------------------------------- the receipt


@dataclass(frozen=True)
class Receipt:
    """A finished run's account: what it cost and what it would have cost run at once in
    real-time, how long it waited, its energy and (where a forecast was loaded) its carbon."""

    ran_at: datetime
    cost: float
    baseline_cost: float
    price_source: str
    waited_s: float
    energy_wh: float
    energy_source: str  # "rapl" (measured) or "estimate"
    carbon_g: float | None = None
    baseline_carbon_g: float | None = None
    carbon_source: str | None = None

    @property
    def saving(self) -> float:
        return self.baseline_cost - self.cost

    @property
    def saving_pct(self) -> float | None:
        """The saving as a share of the baseline; None where the baseline is not positive."""
        if self.baseline_cost <= 0:
            return None
        return round(self.saving / self.baseline_cost * 100, 2)

    def as_json(self) -> dict[str, Any]:
        """`runs show --json`'s `receipt`."""
        return {
            "ran_at": to_iso(self.ran_at), "cost": exact(self.cost),
            "baseline_cost": exact(self.baseline_cost), "saving": exact(self.saving),
            "saving_pct": self.saving_pct, "price_source": self.price_source,
            "waited_s": exact(self.waited_s), "energy_wh": exact(self.energy_wh),
            "energy_source": self.energy_source,
            "carbon_g": None if self.carbon_g is None else exact(self.carbon_g),
            "baseline_carbon_g": (None if self.baseline_carbon_g is None
                                  else exact(self.baseline_carbon_g)),
            "carbon_source": self.carbon_source,
        }


def receipt_of(run: Run, charges: Charges, prices: Prices,
               watts_per_core: float) -> Receipt | None:
    """The receipt of a run that occupied a worker (None for one that never did): priced as
    `report costs` prices it, so the reports' totals are the sum of the receipts."""
    if run.duration_s is None or not run.state.finished:
        return None
    cpu = (run.cpu_user_s or 0.0) + (run.cpu_system_s or 0.0)
    began = run.started_at or run.claimed_at or run.finished_at or run.enqueued_at
    stretch = Stretch(run.mode, run.enqueued_at, began, run.duration_s, cpu, run.energy_j)
    if charges.tariff_cost is not None and charges.tariff_baseline_cost is not None:
        cost, baseline = charges.tariff_cost, charges.tariff_baseline_cost
        source = f"tariff: {charges.tariff_source}"
    else:
        cost = run_cost(prices, run.mode, bool(run.off_peak), run.duration_s, cpu)
        baseline, source = baseline_cost(prices, run.duration_s, cpu), FLAT_PRICES
    return Receipt(
        ran_at=began, cost=cost, baseline_cost=baseline, price_source=source,
        waited_s=run.queue_wait_s or 0.0,
        energy_wh=energy_kwh(stretch, watts_per_core) * 1000,
        energy_source="rapl" if run.energy_j is not None else "estimate",
        carbon_g=charges.carbon_g, baseline_carbon_g=charges.baseline_carbon_g,
        carbon_source=charges.carbon_source)
