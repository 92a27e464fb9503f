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
from easyflow_cli.core.durations import format_duration
from easyflow_cli.core.forecast import Forecast, stretch_cost
from easyflow_cli.core.learned import Expectation
from easyflow_cli.core.model import Mode
from easyflow_cli.core.spec import WorkflowSpec
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


def cost_at(config: Config, mode: Mode, start: datetime, duration_s: float, cpu_s: float,
            energy_kwh: float, tariff: Forecast | None = None) -> tuple[float, str]:
    """What a run started at `start` in `mode` costs, and by what: `tariff` where it covers
    the run, else the pools' prices (off-peak in the tariff hours)."""
    prices = Prices.from_config(config)
    if tariff is not None:
        charged = stretch_cost(tariff, start, start + timedelta(seconds=duration_s),
                               energy_kwh=energy_kwh,
                               worker_hour_price=prices.worker_hour_price(mode, False))
        if charged is not None:
            return charged + cpu_s / 3600 * prices.cpu_hour_price, tariff.source
    window = config.tariff_window
    off_peak = window.contains(start) if window else False
    basis = "off-peak pool prices" if off_peak else "pool prices"
    return run_cost(prices, mode, off_peak, duration_s, cpu_s), basis


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


@dataclass(frozen=True)
class ModeHistory:
    """A workflow's recent finished runs in one mode: what one run occupied (medians over the
    failed runs too, as they cost the same), and how many there were and failed."""

    duration_s: float
    cpu_s: float
    runs: int
    failed: int = 0

    @property
    def failure_share(self) -> float:
        return self.failed / self.runs if self.runs else 0.0


def quote(config: Config, spec: WorkflowSpec, mode: Mode, now: datetime,
          history: dict[str, ModeHistory], learned: Expectation | None = None, *,
          start: datetime | None = None, tariff: Forecast | None = None) -> Quote:
    """When a run in `mode` would start and finish, and what it would likely cost.

    It starts at `start` (a queued run's planned start), else now, or for eco at the next
    off-peak window. Its duration, CPU time and energy are the learned p50 of the workflow's
    recent successful runs (`learned`, when there are enough); else the median of its
    finished runs in the mode, or in the mode with most, else the configured default
    duration. It is priced by `tariff` where that covers it (`cost_at`).
    A run is stopped at its timeout, so no run is quoted longer; and a run that fails is paid
    for and, with retries, run again: the cost counts the attempts the failure share predicts.
    """
    start = start or _default_start(config, mode, now)
    if learned is not None and learned.enough:
        duration, cpu, basis = learned.duration.p50, learned.cpu.p50, _learned_basis(learned)
        energy = learned.energy_kwh.p50
    else:
        duration, cpu, basis = _expected(config, mode, history)
        energy = cpu * config.costs.watts_per_core / 3.6e6
    timeout = spec.timeout or config.pool(mode).timeout
    if duration > timeout:
        duration, cpu, energy = timeout, cpu * timeout / duration, energy * timeout / duration
        basis += f", cut at its {format_duration(timeout)} timeout"
    attempts, basis = _attempts(spec.retries, history, mode, basis)
    cost, priced_by = cost_at(config, mode, start, duration, cpu, energy, tariff)
    if tariff is not None and priced_by == tariff.source:
        basis += f", priced by {priced_by}"
    return Quote(mode, start, start + timedelta(seconds=duration), cost * attempts, duration,
                 basis)


def _default_start(config: Config, mode: Mode, now: datetime) -> datetime:
    window = config.off_peak
    return window.next_start(now) if mode is Mode.ECO and window is not None else now


def _source(mode: Mode, history: dict[str, ModeHistory]) -> str | None:
    """The mode whose history a quote for `mode` uses."""
    if mode.value in history:
        return mode.value
    return max(history, key=lambda m: history[m].runs) if history else None


def _expected(config: Config, mode: Mode,
              history: dict[str, ModeHistory]) -> tuple[float, float, str]:
    source = _source(mode, history)
    if source is None:
        return config.costs.default_duration, 0.0, "no history: default duration"
    past = history[source]
    failed = f", {past.failed} failed" if past.failed else ""
    return past.duration_s, past.cpu_s, f"median of {plural(past.runs, source + ' run')}{failed}"


def _learned_basis(learned: Expectation) -> str:
    error = learned.learned.error_s
    accuracy = f", typically off by {format_duration(round(error, 3))}" if error else ""
    return f"p50 {learned.basis}{accuracy}"


def _attempts(retries: int, history: dict[str, ModeHistory], mode: Mode,
              basis: str) -> tuple[float, str]:
    """Expected attempts of a run that fails with the share its history shows and is retried
    up to `retries` times: 1 + p + p² + … + p^retries."""
    source = _source(mode, history)
    share = history[source].failure_share if source else 0.0
    if not retries or not share:
        return 1.0, basis
    attempts = sum(share**k for k in range(retries + 1))
    return attempts, basis + f", {attempts:.2g} attempts with retries"
