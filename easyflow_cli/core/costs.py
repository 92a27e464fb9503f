"""The price model: what a run cost, what it would have cost as real-time, and quotes.

A run costs the worker time it occupied (its duration) times its mode's pool price per
worker-hour in force when it started (peak, or off-peak during the tariff hours), plus its CPU
time times `cpu_hour_price`. Savings compare against the same runs as real-time runs at the
peak price. Pure functions over the raw measurements, so a price change re-prices history.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from easyflow_cli.core.config import Config
from easyflow_cli.core.model import Mode
from easyflow_cli.core.words import plural


@dataclass(frozen=True)
class Prices:
    """Per mode: (peak, off-peak) price per worker-hour; plus the CPU-hour price."""

    per_hour: dict[Mode, tuple[float, float]]
    cpu_hour_price: float
    currency: str

    @classmethod
    def from_config(cls, config: Config) -> Prices:
        return cls(
            per_hour={mode: (config.pool(mode).price_per_hour,
                             config.pool(mode).off_peak_price_per_hour) for mode in Mode},
            cpu_hour_price=config.costs.cpu_hour_price,
            currency=config.costs.currency,
        )

    def worker_hour_price(self, mode: Mode | str, off_peak: bool) -> float:
        peak, cheap = self.per_hour[Mode(mode)]
        return cheap if off_peak else peak

    @property
    def baseline_price(self) -> float:
        """The reference: real-time at peak."""
        return self.per_hour[Mode.REAL_TIME][0]


def run_cost(prices: Prices, mode: Mode | str, off_peak: bool, duration_s: float,
             cpu_s: float) -> float:
    return (duration_s / 3600 * prices.worker_hour_price(mode, off_peak)
            + cpu_s / 3600 * prices.cpu_hour_price)


def baseline_cost(prices: Prices, duration_s: float, cpu_s: float) -> float:
    """What the same run would have cost as a real-time run at peak price."""
    return duration_s / 3600 * prices.baseline_price + cpu_s / 3600 * prices.cpu_hour_price


def exact(amount: float) -> float:
    """A computed amount as JSON and CSV carry it: to 12 significant digits, which drops float
    noise (0.30000000000000004) and keeps every digit a price and a measurement can give."""
    return float(f"{amount:.12g}")


def savings_pct(baseline: float, actual: float) -> float:
    return 0.0 if baseline <= 0 else round((baseline - actual) / baseline * 100, 2)


def energy_wh(cpu_s: float, watts_per_core: float) -> float:
    """The estimate: busy-core seconds times the configured watts per busy core."""
    return cpu_s * watts_per_core / 3600


@dataclass(frozen=True)
class Quote:
    mode: Mode
    start: datetime
    finish: datetime
    cost: float
    duration_s: float
    basis: str  # where the duration came from

    def as_json(self) -> dict:
        from easyflow_cli.core.timeutil import to_iso

        return {"mode": self.mode.value, "start": to_iso(self.start),
                "finish": to_iso(self.finish), "cost": exact(self.cost),
                "duration_s": exact(self.duration_s), "basis": self.basis}


def quote(config: Config, mode: Mode, now: datetime, history: dict[str, tuple[float, float]],
          history_runs: dict[str, int]) -> Quote:
    """When a run in `mode` would start and finish, and what it would likely cost.

    `history` maps mode → (median duration, median CPU seconds) of this workflow's successful
    runs; a mode without history borrows another mode's, else the configured default.
    """
    start = now
    window = config.off_peak
    if mode is Mode.ECO and window is not None:
        start = window.next_start(now)
    duration, cpu, basis = _expected(config, mode, history, history_runs)
    tariff = config.tariff_window
    off_peak = tariff.contains(start) if tariff else False
    cost = run_cost(Prices.from_config(config), mode, off_peak, duration, cpu)
    return Quote(mode, start, start + timedelta(seconds=duration), cost, duration, basis)


def _expected(config: Config, mode: Mode, history: dict[str, tuple[float, float]],
              history_runs: dict[str, int]) -> tuple[float, float, str]:
    if mode.value in history:
        duration, cpu = history[mode.value]
        return duration, cpu, f"median of {plural(history_runs[mode.value], mode.value + ' run')}"
    if history:
        other = min(history, key=lambda m: -history_runs[m])
        duration, cpu = history[other]
        return duration, cpu, f"median of {plural(history_runs[other], other + ' run')}"
    return config.costs.default_duration, 0.0, "no history: default duration"
