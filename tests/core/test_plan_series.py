"""The forecast the eco planner reads: the file the config names for `optimise`, a
`start,end,value` CSV, and one line naming the file, line and field for a bad one."""

from datetime import UTC, datetime, timedelta

import pytest

from easyflow_cli.core.config import Optimise, load_config
from easyflow_cli.core.errors import BadInput
from easyflow_cli.core.forecast import Unit
from easyflow_cli.core.plan_series import config_policy, read_forecast

CSV = ("start,end,value\n"
       "2026-11-25T12:00:00Z,2026-11-25T13:00:00Z,0.25\n"
       "2026-11-25T13:00:00Z,2026-11-25T14:00:00Z,-0.01\n")


def test_a_csv_is_read_into_a_series_in_the_unit_asked(tmp_path):
    path = tmp_path / "tariff.csv"
    path.write_text(CSV)
    forecast = read_forecast(path, Unit.PER_KWH)
    assert forecast.unit is Unit.PER_KWH
    assert forecast.value_at(datetime(2026, 11, 25, 13, 30, tzinfo=UTC)) == -0.01
    assert forecast.end - forecast.start == timedelta(hours=2)


@pytest.mark.parametrize(("text", "message"), [
    ("from,to,value\n", "tariff.csv:1: the header must be start,end,value"),
    ("start,end,value\n2026-11-25T12:00Z,2026-11-25T13:00Z,cheap\n",
     "tariff.csv:2: value: must be a number, got 'cheap'"),
    ("start,end,value\nnoon,2026-11-25T13:00Z,1\n", "tariff.csv:2: start: not an ISO-8601 time"),
    ("start,end,value\n2026-11-25T13:00Z,2026-11-25T12:00Z,1\n",
     "tariff.csv:2: end: must be after start"),
    ("start,end,value\n2026-11-25T12:00Z,,1\n", "tariff.csv:2: end: not an ISO-8601 time"),
])
def test_a_bad_csv_is_one_line_naming_file_line_and_field(tmp_path, text, message):
    path = tmp_path / "tariff.csv"
    path.write_text(text)
    with pytest.raises(BadInput, match=message.replace("(", r"\(")):
        read_forecast(path, Unit.PER_KWH)


def test_the_config_policy_reads_the_file_of_what_it_optimises(tmp_path):
    (tmp_path / "tariff.csv").write_text(CSV)
    config_file = tmp_path / "easyflow.toml"
    config_file.write_text('[costs]\ntariff = "tariff.csv"\n[pools.eco]\noptimise = "cost"\n'
                           'max_delay = "6h"\n')
    policy = config_policy(load_config(config_file, {}))
    assert (policy.optimise, policy.max_delay) == (Optimise.COST, timedelta(hours=6))
    assert policy.series.forecast.unit is Unit.PER_KWH
    assert policy.series_path == tmp_path / "tariff.csv"


def test_a_missing_file_leaves_the_off_peak_window(tmp_path, caplog):
    config_file = tmp_path / "easyflow.toml"
    config_file.write_text('[carbon]\nforecast = "gone.csv"\n[pools.eco]\noptimise = "carbon"\n')
    policy = config_policy(load_config(config_file, {}))
    assert policy.series is None
    assert "gone.csv: cannot be read" in caplog.text


def test_a_unit_column_saying_multiplier_makes_the_values_multipliers(tmp_path):
    path = tmp_path / "tariff.csv"
    path.write_text("start,end,value,unit\n"
                    "2026-11-25T12:00:00Z,2026-11-25T13:00:00Z,0.5,multiplier\n")
    assert read_forecast(path, Unit.PER_KWH).unit is Unit.MULTIPLIER
