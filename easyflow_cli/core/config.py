"""Daemon configuration: pools, deadlines, drain and log limits, prices, metrics, the cluster.

Looked up in order: an explicit path, `$EASYFLOW_CONFIG`, `$EASYFLOW_HOME/easyflow.toml`,
`/etc/easyflow/easyflow.toml`, else the built-in defaults (`easyflow_cli/defaults/easyflow.toml`,
which a file found overlays key by key). Pool sizes may be overridden by the environment
variables `REALTIME_MAX_WORKERS`, `BALANCED_MAX_WORKERS`, `ECO_MAX_WORKERS`; the cluster's
URLs by `EASYFLOW_DATABASE_URL` and `EASYFLOW_BROKER_URL` (`cluster_config.py`).
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import timedelta
from enum import StrEnum
from pathlib import Path

from easyflow_cli.core.cluster_config import ClusterConfig, build_cluster
from easyflow_cli.core.durations import parse_duration
from easyflow_cli.core.errors import BadInput, SpecError, SpecErrors
from easyflow_cli.core.metrics_config import MetricsConfig, build_metrics
from easyflow_cli.core.model import Mode
from easyflow_cli.core.notify import NotifySpec, check_notify
from easyflow_cli.core.offpeak import OffPeakWindow, parse_window
from easyflow_cli.core.toml_check import Checker, KeyLines, type_name

DEFAULTS_PATH = Path(__file__).parent.parent / "defaults" / "easyflow.toml"
SYSTEM_CONFIG = Path("/etc/easyflow/easyflow.toml")
WORKER_ENV = {
    Mode.REAL_TIME: "REALTIME_MAX_WORKERS",
    Mode.BALANCED: "BALANCED_MAX_WORKERS",
    Mode.ECO: "ECO_MAX_WORKERS",
}
POOL_KEYS = ("workers", "timeout", "nice", "batch_size", "off_peak", "price_per_hour",
             "off_peak_price_per_hour", "start_within")
ECO_KEYS = ("optimise", "max_delay")
COST_KEYS = ("currency", "off_peak", "cpu_hour_price", "watts_per_core", "default_duration",
             "tariff")
# The objective of a mode whose runs should start soon after they are submitted.
DEFAULT_START_WITHIN = {Mode.REAL_TIME: 1.0, Mode.BALANCED: 60.0}
DEFAULT_MAX_DELAY_S = 86400.0
KEEP_FOREVER = "forever"
DEFAULT_KEEP_S = 90 * 86400.0


class Optimise(StrEnum):
    """What the eco pool's planner minimises when it chooses a run's start."""

    OFF_PEAK = "off_peak"  # the fixed window of `pools.eco.off_peak`
    COST = "cost"          # the price series of `costs.tariff`
    CARBON = "carbon"      # the intensity series of `carbon.forecast`


@dataclass(frozen=True)
class PoolConfig:
    workers: int
    timeout: float
    nice: int = 0
    batch_size: int = 1
    off_peak: OffPeakWindow | None = None
    price_per_hour: float = 0.0
    off_peak_price_per_hour: float = 0.0
    # Objective: a run of this mode starts within this many seconds of its submission (None:
    # no start objective; eco's objective is its deadline, else `max_delay`).
    start_within: float | None = None
    optimise: Optimise = Optimise.OFF_PEAK  # eco only
    max_delay: float = DEFAULT_MAX_DELAY_S  # eco only: a run with no deadline starts within it


@dataclass(frozen=True)
class CostConfig:
    currency: str = "USD"
    tariff_window: OffPeakWindow | None = None
    cpu_hour_price: float = 0.0
    watts_per_core: float = 15.0
    default_duration: float = 60.0
    tariff: Path | None = None  # a price series file (core/forecast.py reads it)


@dataclass(frozen=True)
class CarbonConfig:
    forecast: Path | None = None  # a carbon-intensity series file


@dataclass(frozen=True)
class Config:
    pools: dict[Mode, PoolConfig]
    promote_within: timedelta = timedelta(hours=1)
    drain_grace: float = 60.0
    kill_grace: float = 5.0
    log_max_bytes: int = 10 * 1024 * 1024
    costs: CostConfig = field(default_factory=CostConfig)
    carbon: CarbonConfig = field(default_factory=CarbonConfig)
    metrics: MetricsConfig = field(default_factory=MetricsConfig)
    notify: NotifySpec = field(default_factory=NotifySpec)  # every workflow's defaults
    # How long finished runs keep their detail (then rolled up and pruned); None: forever.
    keep_history_s: float | None = DEFAULT_KEEP_S
    cluster: ClusterConfig | None = None  # None: the embedded SQLite database
    source: str = "built-in defaults"

    def pool(self, mode: Mode | str) -> PoolConfig:
        return self.pools[Mode(mode)]

    @property
    def off_peak(self) -> OffPeakWindow | None:
        """The window eco work waits for (scheduling, not pricing)."""
        return self.pools[Mode.ECO].off_peak

    @property
    def tariff_window(self) -> OffPeakWindow | None:
        """The off-peak tariff hours (pricing, and a run's `off_peak` flag)."""
        return self.costs.tariff_window


def find_config_path(explicit: str | Path | None = None,
                     environ: Mapping[str, str] | None = None) -> Path | None:
    env = os.environ if environ is None else environ
    if explicit:
        return Path(explicit)
    if env.get("EASYFLOW_CONFIG"):
        return Path(env["EASYFLOW_CONFIG"])
    from easyflow_cli.core.paths import state_dir

    for candidate in (state_dir(env) / "easyflow.toml", SYSTEM_CONFIG):
        if candidate.is_file():
            return candidate
    return None


def load_config(explicit: str | Path | None = None,
                environ: Mapping[str, str] | None = None) -> Config:
    """The effective configuration: defaults, overlaid by the file found, then the environment."""
    env = os.environ if environ is None else environ
    defaults_text = DEFAULTS_PATH.read_text()
    merged = tomllib.loads(defaults_text)
    path = find_config_path(explicit, env)
    source = "built-in defaults"
    if path is not None:
        try:
            text = path.read_text()
        except OSError as exc:
            raise BadInput(f"{path}: cannot read config: {exc.strerror}") from None
        merged = _overlay(merged, _parse_text(text, str(path)))
        source = str(path)
        config = _build(merged, str(path), KeyLines(text), source, env)
    else:
        config = _build(merged, "<defaults>", KeyLines(defaults_text), source, env)
    return _apply_env(config, env)


def _parse_text(text: str, file: str) -> dict:
    from easyflow_cli.core.toml_check import load_toml

    return load_toml(text, file)


def _overlay(base: dict, top: dict) -> dict:
    out = dict(base)
    for key, value in top.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _overlay(out[key], value)
        else:
            out[key] = value
    return out


def _build(data: dict, file: str, lines: KeyLines, source: str,
           env: Mapping[str, str]) -> Config:
    check = Checker(file, lines)
    check.unknown_keys(data, ("pools", "deadlines", "daemon", "logs", "costs", "carbon", "metrics",
                              "notify", "history", "cluster"), ())
    base = _base_dir(file)
    pools = {}
    raw_pools = data.get("pools", {})
    check.unknown_keys(raw_pools, tuple(m.value for m in Mode), ("pools",))
    for mode in Mode:
        pools[mode] = _build_pool(check, raw_pools.get(mode.value, {}), mode)
    deadlines = data.get("deadlines", {})
    check.unknown_keys(deadlines, ("promote_within",), ("deadlines",))
    daemon = data.get("daemon", {})
    check.unknown_keys(daemon, ("drain_grace", "kill_grace"), ("daemon",))
    logs = data.get("logs", {})
    check.unknown_keys(logs, ("max_bytes",), ("logs",))
    config = Config(
        pools=pools,
        promote_within=timedelta(seconds=check.duration(deadlines, "promote_within", ("deadlines",))
                                 or 3600),
        drain_grace=check.duration(daemon, "drain_grace", ("daemon",)) or 60.0,
        kill_grace=check.duration(daemon, "kill_grace", ("daemon",)) or 5.0,
        log_max_bytes=_int(check, logs, "max_bytes", ("logs",), minimum=1024) or 10485760,
        costs=_build_costs(check, data.get("costs", {}), base),
        carbon=_build_carbon(check, data.get("carbon", {}), base),
        metrics=build_metrics(check, data.get("metrics", {})),
        notify=check_notify(check, data, ()) or NotifySpec(),
        keep_history_s=_keep(check, data.get("history", {})),
        cluster=build_cluster(check, data.get("cluster"), env),
        source=source,
    )
    if check.errors:
        raise SpecErrors(check.errors)
    return config


def _keep(check: Checker, table: dict) -> float | None:
    """`[history] keep`: a duration, or "forever"."""
    check.unknown_keys(table, ("keep",), ("history",))
    text = check.string(table, "keep", ("history",))
    if text is None:
        return DEFAULT_KEEP_S
    if text == KEEP_FOREVER:
        return None
    try:
        return parse_duration(text)
    except ValueError as exc:
        check.fail(("history", "keep"), f'{exc}, or "{KEEP_FOREVER}"')
        return DEFAULT_KEEP_S


def _window(check: Checker, table: dict, path: tuple) -> OffPeakWindow | None:
    text = check.string(table, "off_peak", path)
    if text is None:
        return None
    try:
        return parse_window(text)
    except ValueError as exc:
        check.fail(path + ("off_peak",), str(exc))
        return None


def _price(check: Checker, table: dict, key: str, path: tuple) -> float | None:
    if key not in table:
        return None
    value = table[key]
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        check.fail(path + (key,), f"must be a number >= 0, got {value!r}")
        return None
    return float(value)


def _base_dir(file: str) -> Path | None:
    """Where a relative path in the config file is read from: the file's own directory."""
    return None if file.startswith("<") else Path(file).parent


def _file_path(check: Checker, table: dict, key: str, path: tuple,
               base: Path | None) -> Path | None:
    """A file named by the config (an empty string: none). It is read by whoever uses it, so a
    file that comes later or changes is taken up without a config change."""
    text = check.string(table, key, path)
    if not text:
        return None
    named = Path(text).expanduser()
    return named if named.is_absolute() or base is None else base / named


def _build_costs(check: Checker, table: dict, base: Path | None) -> CostConfig:
    path = ("costs",)
    check.unknown_keys(table, COST_KEYS, path)
    return CostConfig(
        currency=check.string(table, "currency", path) or "USD",
        tariff_window=_window(check, table, path),
        cpu_hour_price=_price(check, table, "cpu_hour_price", path) or 0.0,
        watts_per_core=_price(check, table, "watts_per_core", path) or 0.0,
        default_duration=check.duration(table, "default_duration", path) or 60.0,
        tariff=_file_path(check, table, "tariff", path, base),
    )


def _build_carbon(check: Checker, table: dict, base: Path | None) -> CarbonConfig:
    check.unknown_keys(table, ("forecast",), ("carbon",))
    return CarbonConfig(forecast=_file_path(check, table, "forecast", ("carbon",), base))


def _build_pool(check: Checker, table: dict, mode: Mode) -> PoolConfig:
    path = ("pools", mode.value)
    check.unknown_keys(table, POOL_KEYS + (ECO_KEYS if mode is Mode.ECO else ()), path)
    off_peak = _window(check, table, path)
    return PoolConfig(
        workers=_int(check, table, "workers", path, minimum=1) or 1,
        timeout=check.duration(table, "timeout", path) or 60.0,
        nice=_int(check, table, "nice", path, minimum=0, maximum=19) or 0,
        batch_size=_int(check, table, "batch_size", path, minimum=1) or 1,
        off_peak=off_peak,
        price_per_hour=_price(check, table, "price_per_hour", path) or 0.0,
        off_peak_price_per_hour=_price(check, table, "off_peak_price_per_hour", path) or 0.0,
        start_within=check.duration(table, "start_within", path)
        or DEFAULT_START_WITHIN.get(mode),
        optimise=_optimise(check, table, path),
        max_delay=check.duration(table, "max_delay", path) or DEFAULT_MAX_DELAY_S,
    )


def _optimise(check: Checker, table: dict, path: tuple) -> Optimise:
    text = check.string(table, "optimise", path)
    if text is None:
        return Optimise.OFF_PEAK
    try:
        return Optimise(text)
    except ValueError:
        names = ", ".join(f'"{o.value}"' for o in Optimise)
        check.fail(path + ("optimise",), f"must be one of {names}, got {text!r}")
        return Optimise.OFF_PEAK


def _int(check: Checker, table: dict, key: str, path: tuple, *, minimum: int,
         maximum: int | None = None) -> int | None:
    if key not in table:
        return None
    value = table[key]
    if isinstance(value, bool) or not isinstance(value, int):
        check.fail(path + (key,), f"must be a whole number, got {type_name(value)}")
        return None
    if value < minimum or (maximum is not None and value > maximum):
        bounds = f">= {minimum}" if maximum is None else f"between {minimum} and {maximum}"
        check.fail(path + (key,), f"must be {bounds}, got {value}")
        return None
    return value


def _apply_env(config: Config, env: Mapping[str, str]) -> Config:
    pools = dict(config.pools)
    for mode, name in WORKER_ENV.items():
        if env.get(name):
            try:
                workers = int(env[name])
                if workers < 1:
                    raise ValueError
            except ValueError:
                raise SpecErrors([SpecError(
                    f"must be a whole number >= 1, got {env[name]!r}", file="environment",
                    field=name,
                )]) from None
            pools[mode] = replace(pools[mode], workers=workers)
    return replace(config, pools=pools)
