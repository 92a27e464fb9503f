"""The daemon's and a foreground run's hold on the tariff and carbon forecast files."""

import os
import shutil
from dataclasses import replace
from pathlib import Path

from easyflow_cli.core.config import CarbonConfig, load_config
from easyflow_cli.runtime.forecasts import LOOK_EVERY_S, ForecastFiles

SAMPLES = Path(__file__).parents[2] / "config" / "forecasts"
ROWS = "start,end,value\n2026-12-02T00:00:00Z,2026-12-02T01:00:00Z,{}\n"


class Ticks:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def held(tmp_path, tariff_text=None, carbon=None):
    config = load_config(environ={"EASYFLOW_HOME": str(tmp_path)})
    tariff = None
    if tariff_text is not None:
        tariff = tmp_path / "tariff.csv"
        tariff.write_text(tariff_text)
    config = replace(config, costs=replace(config.costs, tariff=tariff),
                     carbon=CarbonConfig(forecast=carbon))
    warnings: list[str] = []
    ticks = Ticks()
    return ForecastFiles(config, warn=warnings.append, monotonic=ticks), warnings, ticks, config


def rewrite(path: Path, text: str) -> None:
    path.write_text(text)
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))


def test_nothing_configured_prices_nothing(tmp_path):
    files, warnings, _, _ = held(tmp_path)
    assert not files.current().has_series and warnings == []


def test_a_changed_file_is_read_again_at_the_next_look(tmp_path):
    files, _, ticks, _ = held(tmp_path, ROWS.format(0.2))
    assert files.current().tariff.intervals[0].value == 0.2
    rewrite(tmp_path / "tariff.csv", ROWS.format(0.3))
    assert files.current().tariff.intervals[0].value == 0.2  # not looked at again yet
    ticks.now += LOOK_EVERY_S
    assert files.current().tariff.intervals[0].value == 0.3


def test_a_bad_file_is_told_once_and_the_last_series_kept(tmp_path):
    files, warnings, ticks, _ = held(tmp_path, ROWS.format(0.2))
    rewrite(tmp_path / "tariff.csv", ROWS.format("cheap"))
    for _ in range(3):
        ticks.now += LOOK_EVERY_S
        assert files.current().tariff.intervals[0].value == 0.2
    assert warnings == [f"{tmp_path / 'tariff.csv'}:2: value: must be a number, got 'cheap'"
                        " (the series read before stays in use)"]


def test_reload_reads_the_files_again_and_takes_new_ones(tmp_path):
    files, _, _, config = held(tmp_path, ROWS.format(0.2))
    rewrite(tmp_path / "tariff.csv", ROWS.format(0.4))
    carbon = tmp_path / "carbon.json"
    shutil.copy(SAMPLES / "uk-carbon-intensity.json", carbon)
    files.reload(replace(config, carbon=CarbonConfig(forecast=carbon)))
    pricing = files.current()  # without waiting for the next look
    assert pricing.tariff.intervals[0].value == 0.4
    assert pricing.carbon.source == "UK carbon intensity from carbon.json"


def test_a_missing_file_is_told(tmp_path):
    files, warnings, _, _ = held(tmp_path, carbon=tmp_path / "later.json")
    assert files.current().carbon is None
    assert len(warnings) == 1 and "later.json: cannot be read" in warnings[0]
