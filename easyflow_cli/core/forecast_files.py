"""Reading a tariff or a carbon forecast from the files people already have.

Six shapes, told apart by their content: a simple CSV (`start,end,value`, with an optional
`unit` column), and the JSON of Electricity Maps' carbon-intensity forecast, WattTime v3's
`/forecast`, the UK carbon-intensity API (`/intensity/{from}/fw48h`), the Carbon Aware SDK's
`/emissions/forecasts/current` and Octopus Energy's `standard-unit-rates` (Agile). Whatever
the shape, the result is one `Forecast` in normalised units: carbon in gCO2/kWh, prices in
currency per kWh (or a multiplier on the pools' prices, which only a CSV can say). A file that
cannot be read raises one `SpecError` naming the file and the line or field.
"""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Callable
from datetime import datetime, timedelta
from enum import StrEnum
from pathlib import Path
from typing import Any

from easyflow_cli.core.errors import SpecError, shown
from easyflow_cli.core.forecast import Forecast, Interval, Unit
from easyflow_cli.core.timeutil import parse_time


class SeriesKind(StrEnum):
    """What a file is read as: the config key that names it decides."""

    TARIFF = "tariff"            # [costs] tariff
    CARBON = "carbon forecast"   # [carbon] forecast


KIND_OF_UNIT = {Unit.PER_KWH: SeriesKind.TARIFF, Unit.MULTIPLIER: SeriesKind.TARIFF,
                Unit.G_CO2_PER_KWH: SeriesKind.CARBON}
# WattTime's units, as grams of CO2 per kWh. A pound is 453.59237 g; per MWh is per 1000 kWh.
WATTTIME_UNITS = {"lbs_co2_per_mwh": 0.45359237, "kg_co2_per_mwh": 1.0, "g_co2_per_kwh": 1.0}
ELECTRICITY_MAPS_STEPS = {"5_minutes": timedelta(minutes=5), "15_minutes": timedelta(minutes=15),
                          "hourly": timedelta(hours=1)}
PENCE = 0.01  # Octopus prices are pence per kWh; a series holds pounds (the currency) per kWh


class ShapeError(ValueError):
    """A problem at one field of a JSON document (a path such as `forecast[3].datetime`)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


def read_series(path: Path, kind: SeriesKind) -> Forecast:
    """The series in the file at `path`, read as a `kind`; SpecError if it cannot be."""
    try:
        text = path.read_text(encoding="utf-8-sig")  # a spreadsheet may begin with a BOM
    except (OSError, UnicodeDecodeError) as error:
        raise SpecError(f"cannot be read: {getattr(error, 'strerror', None) or error}",
                        file=str(path)) from None
    return parse_series(text, path.name, kind, file=str(path))


def parse_series(text: str, name: str, kind: SeriesKind, *, file: str) -> Forecast:
    """The series `text` holds (`name` is what its source says it came from)."""
    if text.lstrip()[:1] in ("{", "["):
        forecast = _from_json(text, name, file)
    else:
        forecast = _from_csv(text, name, kind, file)
    if KIND_OF_UNIT[forecast.unit] is not kind:
        raise SpecError(f"holds a {KIND_OF_UNIT[forecast.unit]} ({forecast.unit.value}),"
                        f" not a {kind}", file=file)
    if not forecast.intervals:
        raise SpecError("holds no intervals", file=file)
    return forecast


# --------------------------------------------------------------------------- CSV


CSV_COLUMNS = ("start", "end", "value")


def _from_csv(text: str, name: str, kind: SeriesKind, file: str) -> Forecast:
    """`start,end,value[,unit]`, a header first; `#` comments and blank lines are skipped.
    Times are ISO-8601 (local time without an offset); the unit, when given, is one for the
    whole file: `per_kwh`, `multiplier` or `gCO2/kWh`."""
    rows = _csv_lines(text, file)
    if not rows:
        raise SpecError("holds no intervals", file=file)
    header_line, header = rows[0]
    columns = [c.strip().lower() for c in header]
    if columns[:3] != list(CSV_COLUMNS) or columns[3:] not in ([], ["unit"]):
        raise SpecError(f"the header must be start,end,value (and optionally unit), got"
                        f" {shown(','.join(header))}", file=file, line=header_line)
    units, intervals = set(), []
    for number, row in rows[1:]:
        interval, unit = _csv_row(row, len(columns), file, number)
        intervals.append((number, interval))
        units.add(unit)
    unit = _one_unit(units, kind, file)
    return _forecast(unit, f"csv from {name}", intervals, file)


def _csv_lines(text: str, file: str) -> list[tuple[int, list[str]]]:
    """The lines that hold fields, numbered; comments and blank lines left out."""
    reader = csv.reader(io.StringIO(text), strict=True)
    try:
        return [(reader.line_num, row) for row in reader
                if row and not row[0].lstrip().startswith("#") and any(c.strip() for c in row)]
    except csv.Error as error:
        raise SpecError(f"not a CSV: {error}", file=file, line=reader.line_num) from None


def _csv_row(row: list[str], width: int, file: str, line: int) -> tuple[Interval, str | None]:
    if len(row) != width:
        raise SpecError(f"expected {width} fields, got {len(row)}", file=file, line=line)
    start = _csv_time(row[0], "start", file, line)
    end = _csv_time(row[1], "end", file, line)
    if end <= start:
        raise SpecError("must be after start", file=file, line=line, field="end")
    try:
        value = _number(row[2].strip())
    except ValueError as error:
        raise SpecError(str(error), file=file, line=line, field="value") from None
    return Interval(start, end, value), (row[3].strip() if width == 4 else None)


def _csv_time(text: str, field: str, file: str, line: int) -> datetime:
    try:
        return parse_time(text)
    except ValueError:
        raise SpecError(f"not an ISO-8601 time: {shown(text.strip())}", file=file, line=line,
                        field=field) from None


def _one_unit(units: set[str | None], kind: SeriesKind, file: str) -> Unit:
    named = units - {None, ""}
    if len(named) > 1:
        raise SpecError(f"one unit per file, got {', '.join(sorted(map(str, named)))}",
                        file=file, field="unit")
    if not named:
        return Unit.PER_KWH if kind is SeriesKind.TARIFF else Unit.G_CO2_PER_KWH
    text = str(next(iter(named)))
    try:
        return Unit(text)
    except ValueError:
        names = ", ".join(u.value for u in Unit)
        raise SpecError(f"must be one of {names}, got {shown(text)}", file=file,
                        field="unit") from None


# --------------------------------------------------------------------------- JSON


Reader = Callable[[Any, str], tuple[Unit, str, list[tuple[str, Interval]]]]


def _from_json(text: str, name: str, file: str) -> Forecast:
    try:
        document = json.loads(text)
    except json.JSONDecodeError as error:
        raise SpecError(f"not valid JSON: {error.msg}", file=file, line=error.lineno) from None
    reader = _shape_of(document)
    if reader is None:
        raise SpecError("not a shape easyflow reads: a CSV (start,end,value), or the JSON of"
                        " Electricity Maps, WattTime v3, the UK carbon-intensity API, the"
                        " Carbon Aware SDK or Octopus Energy", file=file)
    try:
        unit, label, intervals = reader(document, name)
    except ShapeError as error:
        raise SpecError(str(error), file=file, field=error.field) from None
    return _forecast(unit, label, intervals, file)


def _shape_of(document: Any) -> Reader | None:
    if isinstance(document, list):
        first = document[0] if document else None
        return _carbon_aware_sdk if isinstance(first, dict) and _key(
            first, "forecastData") is not None else None
    if not isinstance(document, dict):
        return None
    if "forecast" in document:
        return _electricity_maps
    if "results" in document:
        return _octopus
    data, meta = document.get("data"), document.get("meta")
    if isinstance(meta, dict) and "signal_type" in meta:
        return _watttime
    if isinstance(data, list) and data and isinstance(data[0], dict) and "from" in data[0]:
        return _uk_carbon_intensity
    return None


def _electricity_maps(document: dict, name: str) -> tuple[Unit, str, list]:
    """`{"zone", "forecast": [{"carbonIntensity", "datetime"}], "temporalGranularity"?}`:
    each point starts an interval that lasts the granularity, else until the next point."""
    points = _list(document, "forecast", "forecast")
    step = ELECTRICITY_MAPS_STEPS.get(str(document.get("temporalGranularity")))
    starts = [(f"forecast[{i}]", _time(p, "datetime", f"forecast[{i}]"))
              for i, p in enumerate(points)]
    values = [_value(p, "carbonIntensity", f"forecast[{i}]") for i, p in enumerate(points)]
    label = f"Electricity Maps {document.get('zone') or ''}".rstrip() + f" from {name}"
    return Unit.G_CO2_PER_KWH, label, _spaced(starts, values, step)


def _watttime(document: dict, name: str) -> tuple[Unit, str, list]:
    """`{"data": [{"point_time", "value"}], "meta": {"units", "data_point_period_seconds",
    "region"}}`, MOER in pounds per MWh (converted to g/kWh)."""
    meta = document["meta"]
    units = str(meta.get("units"))
    if units not in WATTTIME_UNITS:
        raise ShapeError("meta.units", f"{shown(units)} is not an emissions rate easyflow"
                         f" reads ({', '.join(WATTTIME_UNITS)})")
    factor = WATTTIME_UNITS[units]
    period = meta.get("data_point_period_seconds", 300)
    if not _is_number(period) or period <= 0:
        raise ShapeError("meta.data_point_period_seconds", "must be a positive number")
    points = _list(document, "data", "data")
    intervals = []
    for i, point in enumerate(points):
        start = _time(point, "point_time", f"data[{i}]")
        value = _value(point, "value", f"data[{i}]") * factor
        intervals.append((f"data[{i}]", Interval(start, start + timedelta(seconds=period),
                                                 value)))
    label = f"WattTime {meta.get('region') or ''}".rstrip() + f" from {name}"
    return Unit.G_CO2_PER_KWH, label, intervals


def _uk_carbon_intensity(document: dict, name: str) -> tuple[Unit, str, list]:
    """`{"data": [{"from", "to", "intensity": {"forecast", "actual", "index"}}]}`: the
    forecast (the actual where the forecast is missing), half-hourly, in gCO2/kWh."""
    intervals = []
    for i, point in enumerate(_list(document, "data", "data")):
        where = f"data[{i}]"
        intensity = point.get("intensity")
        if not isinstance(intensity, dict):
            raise ShapeError(f"{where}.intensity", "missing, or not an object")
        key = "forecast" if intensity.get("forecast") is not None else "actual"
        value = _value(intensity, key, f"{where}.intensity")
        start, end = _time(point, "from", where), _time(point, "to", where)
        intervals.append((where, Interval(start, end, value)))
    return Unit.G_CO2_PER_KWH, f"UK carbon intensity from {name}", intervals


def _carbon_aware_sdk(document: list, name: str) -> tuple[Unit, str, list]:
    """`[{"location", "forecastData": [{"timestamp", "duration", "value"}]}]` (duration in
    minutes, value in gCO2/kWh); the first location's forecast. The SDK's CLI writes the same
    keys capitalised."""
    first = document[0]
    points = _key(first, "forecastData")
    if not isinstance(points, list):
        raise ShapeError("[0].forecastData", "must be a list")
    intervals = []
    for i, point in enumerate(points):
        where = f"[0].forecastData[{i}]"
        if not isinstance(point, dict):
            raise ShapeError(where, "must be an object")
        start = _time(_lowered(point), "timestamp", where)
        minutes = _value(_lowered(point), "duration", where)
        if minutes <= 0:
            raise ShapeError(f"{where}.duration", "must be a positive number of minutes")
        value = _value(_lowered(point), "value", where)
        intervals.append((where, Interval(start, start + timedelta(minutes=minutes), value)))
    location = _key(first, "location") or ""
    label = f"Carbon Aware SDK {location}".rstrip() + f" from {name}"
    return Unit.G_CO2_PER_KWH, label, intervals


def _octopus(document: dict, name: str) -> tuple[Unit, str, list]:
    """`{"results": [{"value_inc_vat", "valid_from", "valid_to"}]}`, newest first, in pence
    per kWh including VAT (converted to pounds); prices below zero are paid to the user."""
    intervals = []
    for i, point in enumerate(_list(document, "results", "results")):
        where = f"results[{i}]"
        start, end = _time(point, "valid_from", where), _time(point, "valid_to", where)
        value = _value(point, "value_inc_vat", where) * PENCE
        intervals.append((where, Interval(start, end, value)))
    return Unit.PER_KWH, f"Octopus Energy from {name}", intervals


# --------------------------------------------------------------------------- helpers


def _forecast(unit: Unit, source: str, intervals: list[tuple[Any, Interval]],
              file: str) -> Forecast:
    """The series, each interval checked to end after it starts and none to overlap."""
    for where, interval in intervals:
        if interval.end <= interval.start:
            raise _located(where, "ends before it starts", file)
    try:
        return Forecast(unit, source, tuple(interval for _, interval in intervals))
    except ValueError as error:
        detail = str(error).split(": ", 1)[-1]
        raise SpecError(detail, file=file) from None


def _located(where: Any, message: str, file: str) -> SpecError:
    if isinstance(where, int):
        return SpecError(message, file=file, line=where)
    return SpecError(message, file=file, field=str(where))


def _spaced(starts: list[tuple[str, datetime]], values: list[float],
            step: timedelta | None) -> list[tuple[str, Interval]]:
    """Points that each start an interval: it lasts `step`, else until the next point (the
    last as long as the one before it, or an hour when it is alone)."""
    ordered = sorted(zip(starts, values, strict=True), key=lambda p: p[0][1])
    intervals = []
    for index, ((where, start), value) in enumerate(ordered):
        if step is not None:
            end = start + step
        elif index + 1 < len(ordered):
            end = ordered[index + 1][0][1]
        else:
            end = start + (start - ordered[index - 1][0][1] if index else timedelta(hours=1))
        intervals.append((where, Interval(start, end, value)))
    return intervals


def _list(document: dict, key: str, field: str) -> list[dict]:
    items = document.get(key)
    if not isinstance(items, list):
        raise ShapeError(field, "missing, or not a list")
    for i, item in enumerate(items):
        if not isinstance(item, dict):
            raise ShapeError(f"{field}[{i}]", "must be an object")
    return items


def _time(point: dict, key: str, where: str) -> datetime:
    text = point.get(key)
    if not isinstance(text, str):
        raise ShapeError(f"{where}.{key}", "missing, or not a time")
    try:
        return parse_time(text, default_tz=None)
    except ValueError:
        raise ShapeError(f"{where}.{key}", f"not an ISO-8601 time: {shown(text)}") from None


def _value(point: dict, key: str, where: str) -> float:
    value = point.get(key)
    if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
        return float(value)
    raise ShapeError(f"{where}.{key}", f"must be a number, got {shown(value)}")


def _number(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"must be a number, got {shown(text)}") from None
    if not math.isfinite(value):
        raise ValueError(f"must be a finite number, got {shown(text)}")
    return value


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _key(document: dict, key: str) -> Any:
    """A key as the SDK's web API writes it (camelCase), or as its CLI does (PascalCase)."""
    if key in document:
        return document[key]
    return document.get(key[:1].upper() + key[1:])


def _lowered(point: dict) -> dict:
    return {k[:1].lower() + k[1:]: v for k, v in point.items()}
