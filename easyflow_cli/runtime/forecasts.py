"""The tariff and carbon forecast the configuration names, held as series and re-read when
their files change: the `PricingSource` the daemon's queue (and a foreground run's) charges
ending runs with.

A file is looked at (one stat) at most once a second, and read again when its modification
time, size or inode changed, or on `reload` (the daemon's SIGHUP). In the daemon a changed file
is read by a thread of its own (a year of hourly prices takes a fraction of a second to parse,
which a dispatch must not wait for); the series read before is used until it is done. A file
that cannot be read is reported once, in one line naming the file and its line or field, and
the last series read from it stays in use: a forecast being rewritten by a cron job must not
drop the series.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path

from easyflow_cli.core.config import Config
from easyflow_cli.core.costs import Prices
from easyflow_cli.core.errors import SpecError
from easyflow_cli.core.forecast import Forecast
from easyflow_cli.core.forecast_files import SeriesKind, read_series
from easyflow_cli.core.receipts import Pricing

log = logging.getLogger(__name__)

LOOK_EVERY_S = 1.0
Signature = tuple[int, int, int] | None  # mtime_ns, size, inode; None: no file


class SeriesFile:
    """One configured file and the last series read from it."""

    def __init__(self, path: Path | None, kind: SeriesKind, warn: Callable[[str], None]) -> None:
        self.path = path
        self.kind = kind
        self.warn = warn
        self.series: Forecast | None = None
        self.signature: Signature = None
        self.problem: str | None = None  # the last one reported
        self.reading: threading.Thread | None = None
        self.read()

    def look(self, *, in_background: bool) -> None:
        """Read the file again if it changed since it was last read (and is not being read)."""
        if self.path is None or (self.reading is not None and self.reading.is_alive()):
            return
        if _signature(self.path) == self.signature:
            return
        if not in_background:
            self.read()
            return
        self.reading = threading.Thread(target=self.read, name=f"read {self.kind}", daemon=True)
        self.reading.start()

    def read(self) -> None:
        if self.path is None:
            return
        self.signature = _signature(self.path)
        try:
            self.series = read_series(self.path, self.kind)
        except SpecError as error:
            self._report(str(error))
            return
        if self.problem is not None:
            log.info("%s %s read again: %s", self.kind, self.path, self.series.source)
        self.problem = None

    def _report(self, problem: str) -> None:
        if problem != self.problem:
            kept = " (the series read before stays in use)" if self.series else ""
            self.warn(f"{problem}{kept}")
        self.problem = problem


class ForecastFiles:
    """The configured `[costs] tariff` and `[carbon] forecast`, as the `Pricing` of now."""

    def __init__(self, config: Config, *, warn: Callable[[str], None] = log.warning,
                 monotonic: Callable[[], float] = time.monotonic,
                 in_background: bool = False) -> None:
        """`in_background`: a changed file is read by a thread (the daemon), not by the caller
        of `current` (a foreground run, which has no one waiting on it)."""
        self.warn = warn
        self.monotonic = monotonic
        self.in_background = in_background
        self.tariff: SeriesFile | None = None
        self.carbon: SeriesFile | None = None
        self.reload(config)

    def reload(self, config: Config) -> None:
        """Take the configuration (maybe naming other files) and read the files again."""
        self.prices = Prices.from_config(config)
        self.watts_per_core = config.costs.watts_per_core
        self.tariff = self._file(self.tariff, config.costs.tariff, SeriesKind.TARIFF)
        self.carbon = self._file(self.carbon, config.carbon.forecast, SeriesKind.CARBON)
        self.looked_at = self.monotonic()

    def _file(self, held: SeriesFile | None, path: Path | None, kind: SeriesKind) -> SeriesFile:
        """The same file read again (keeping its series if it cannot be), or the one named."""
        if held is not None and held.path == path:
            held.read()
            return held
        return SeriesFile(path, kind, self.warn)

    def current(self) -> Pricing:
        assert self.tariff is not None and self.carbon is not None
        now = self.monotonic()
        if now - self.looked_at >= LOOK_EVERY_S:
            self.looked_at = now
            self.tariff.look(in_background=self.in_background)
            self.carbon.look(in_background=self.in_background)
        return Pricing(self.prices, self.watts_per_core, self.tariff.series, self.carbon.series)


def _signature(path: Path) -> Signature:
    try:
        stat = os.stat(path)
    except OSError:
        return None
    return stat.st_mtime_ns, stat.st_size, stat.st_ino
