"""Each shape of forecast file, read from the samples shipped under config/forecasts/."""

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from easyflow_cli.core.errors import SpecError
from easyflow_cli.core.forecast import Unit
from easyflow_cli.core.forecast_files import SeriesKind, parse_series, read_series

SAMPLES = Path(__file__).parents[2] / "config" / "forecasts"
T0 = datetime(2026, 12, 2, tzinfo=UTC)


def sample(name, kind=SeriesKind.CARBON):
    return read_series(SAMPLES / name, kind)


def parse(text, kind=SeriesKind.TARIFF):
    return parse_series(text, "f", kind, file="f")


def test_the_csv_tariff_is_per_kwh_with_a_negative_price():
    series = sample("tariff.csv", SeriesKind.TARIFF)
    assert series.unit is Unit.PER_KWH and series.source == "csv from tariff.csv"
    assert (series.start, series.end) == (T0, T0 + timedelta(days=1))
    assert series.value_at(T0 + timedelta(hours=12)) == -0.02


def test_a_csv_may_say_multiplier():
    series = sample("tariff-multiplier.csv", SeriesKind.TARIFF)
    assert series.unit is Unit.MULTIPLIER
    assert series.value_at(T0 + timedelta(hours=17)) == 1.8


def test_electricity_maps_hourly_points():
    series = sample("electricitymaps.json")
    assert series.unit is Unit.G_CO2_PER_KWH and series.source.startswith("Electricity Maps DE")
    assert len(series.intervals) == 24 and series.end == T0 + timedelta(hours=24)
    assert series.value_at(T0 + timedelta(minutes=90)) == 305


def test_watttime_pounds_per_mwh_become_grams_per_kwh():
    series = sample("watttime.json")
    assert series.source.startswith("WattTime CAISO_NORTH")
    assert series.value_at(T0) == pytest.approx(870 * 0.45359237)
    assert series.intervals[0].end - series.intervals[0].start == timedelta(minutes=5)


def test_uk_carbon_intensity_half_hours():
    series = sample("uk-carbon-intensity.json")
    assert len(series.intervals) == 48 and series.end == T0 + timedelta(days=1)
    assert series.value_at(T0) == 82  # the forecast, not the index


def test_carbon_aware_sdk_forecast_data():
    series = sample("carbon-aware-sdk.json")
    assert series.source.startswith("Carbon Aware SDK eastus")
    assert series.value_at(T0 + timedelta(minutes=7)) == 399.8


def test_the_carbon_aware_sdk_cli_writes_its_keys_capitalised():
    text = ('[{"Location": "eastus", "ForecastData": [{"Timestamp": "2026-12-02T00:00:00Z",'
            ' "Duration": 30, "Value": 210.5}]}]')
    series = parse(text, SeriesKind.CARBON)
    assert series.end == T0 + timedelta(minutes=30) and series.value_at(T0) == 210.5


def test_octopus_agile_pence_become_pounds_in_time_order():
    series = sample("octopus-agile.json", SeriesKind.TARIFF)
    assert series.unit is Unit.PER_KWH and series.start == T0
    assert series.value_at(T0 + timedelta(hours=12, minutes=10)) == pytest.approx(-0.021)


def test_a_carbon_forecast_is_not_a_tariff():
    with pytest.raises(SpecError, match="holds a carbon forecast .*, not a tariff"):
        sample("watttime.json", SeriesKind.TARIFF)


@pytest.mark.parametrize(("text", "where"), [
    ("start,end,value\n2026-12-02T00:00Z,2026-12-02T01:00Z,cheap\n", "f:2: value: must be a"),
    ("start,end,value\n2026-12-02T01:00Z,2026-12-02T00:00Z,1\n", "f:2: end: must be after"),
    ("start,end,value\nsoon,2026-12-02T00:00Z,1\n", "f:2: start: not an ISO-8601 time"),
    ("begin,end,value\n", "f:1: the header must be"),
    ("start,end,value,unit\n2026-12-02T00:00Z,2026-12-02T01:00Z,1,euro\n", "f: unit: must be"),
    ('{"results": [{"valid_from": "2026-12-02T00:00Z", "valid_to": "2026-12-02T00:30Z"}]}',
     "f: results[0].value_inc_vat: must be a number"),
    ('{"forecast": [{"carbonIntensity": 1, "datetime": 3}]}', "f: forecast[0].datetime"),
    ('{"data": [], "meta": {"signal_type": "co2_moer", "units": "percentile"}}', "f: meta.units"),
    ('{"forecast": [\n  1,\n}', "f:3: not valid JSON"),
    ('{"prices": []}', "f: not a shape easyflow reads"),
])
def test_a_bad_file_is_one_line_naming_file_and_line_or_field(text, where):
    with pytest.raises(SpecError) as raised:
        parse(text, SeriesKind.CARBON if "forecast" in text or "meta" in text else
              SeriesKind.TARIFF)
    message = str(raised.value)
    assert message.startswith(where) and "\n" not in message


def test_overlapping_intervals_are_refused():
    text = ("start,end,value\n2026-12-02T00:00Z,2026-12-02T02:00Z,1\n"
            "2026-12-02T01:00Z,2026-12-02T03:00Z,2\n")
    with pytest.raises(SpecError, match="^f: intervals overlap at 2026-12-02T01:00"):
        parse(text)


def test_a_missing_file_is_named(tmp_path):
    with pytest.raises(SpecError, match="missing.csv: cannot be read"):
        read_series(tmp_path / "missing.csv", SeriesKind.TARIFF)


def test_a_spreadsheet_s_byte_order_mark_and_a_broken_quote(tmp_path):
    path = tmp_path / "excel.csv"
    path.write_bytes(b"\xef\xbb\xbfstart,end,value\r\n2026-12-02T00:00Z,2026-12-02T01:00Z,0.1\r\n")
    assert read_series(path, SeriesKind.TARIFF).value_at(T0) == 0.1
    with pytest.raises(SpecError, match="^f:2: not a CSV: "):
        parse('start,end,value\n2026-12-02T00:00Z,"2026"-12,1\n')


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20)
    | st.sampled_from(["2026-12-02T00:00Z", "2026-12-02T01:00:00+00:00", "lbs_co2_per_mwh"]),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.sampled_from(
        ["forecast", "results", "data", "meta", "signal_type", "units", "from", "to",
         "intensity", "forecast", "actual", "carbonIntensity", "datetime", "point_time", "value",
         "valid_from", "valid_to", "value_inc_vat", "forecastData", "ForecastData", "timestamp",
         "duration", "data_point_period_seconds", "temporalGranularity", "zone"]), inner,
        max_size=5),
    max_leaves=20)


@settings(max_examples=150)
@given(JSON_VALUES, st.sampled_from(list(SeriesKind)))
def test_any_json_is_a_series_or_one_line_never_a_traceback(document, kind):
    try:
        parse_series(json.dumps(document), "f", kind, file="f")
    except SpecError as error:
        assert "\n" not in str(error)


@settings(max_examples=150)
@given(st.text(max_size=200), st.sampled_from(list(SeriesKind)))
def test_any_text_is_a_series_or_one_line_never_a_traceback(text, kind):
    try:
        parse_series("start,end,value\n" + text, "f", kind, file="f")
    except SpecError as error:
        assert "\n" not in str(error)
