"""`easyflow report advise`: the table, `--json` and `--csv` drawn from one report."""

from __future__ import annotations

import csv
import io
import json

from typer.testing import CliRunner

from easyflow_cli.cli.main import app
from easyflow_cli.core.timeutil import utcnow
from tests.reporting import test_advice as fixtures

runner = CliRunner()


def test_advise_prints_each_verdict_three_ways(store, write, monkeypatch):
    monkeypatch.setattr(fixtures, "NOW", utcnow())
    source = write("export.toml", 'name = "export"\n[[steps]]\nrun = ["true"]\n')
    assert runner.invoke(app, ["workflow", "add", str(source)]).exit_code == 0
    fixtures.history(store, "export", runs=30, days=29, mode="real-time", followed=False)
    fixtures.history(store, "fresh", runs=4, days=2, mode="real-time", followed=False)

    table = runner.invoke(app, ["report", "advise"])
    assert table.exit_code == 0, table.output
    assert "over-served" in table.stdout and 'execution_mode = "eco"' in table.stdout
    assert "money: the pools' prices (no tariff loaded); carbon: no carbon forecast loaded" \
        in table.stdout

    document = json.loads(runner.invoke(app, ["report", "advise", "--json"]).stdout)
    assert [(w["workflow"], w["verdict"]) for w in document["workflows"]] == [
        ("export", "over-served"), ("fresh", "not enough history")]

    rows = list(csv.DictReader(io.StringIO(
        runner.invoke(app, ["report", "advise", "--csv", "--workflow", "export"]).stdout)))
    assert [(r["workflow"], r["verdict"], r["file"], r["toml"]) for r in rows] == [
        ("export", "over-served", str(source), 'execution_mode = "eco"')]


def test_advise_of_an_unknown_workflow_is_bad_input(store):
    done = runner.invoke(app, ["report", "advise", "--workflow", "nosuch"])
    assert done.exit_code == 2


def test_advise_reads_the_configured_carbon_forecast(store, home, monkeypatch):
    monkeypatch.setattr(fixtures, "NOW", utcnow())
    fixtures.history(store, "export", runs=30, days=29, mode="real-time", followed=False)
    (home / "carbon.csv").write_text("start,end,value\n2026-12-01T00:00:00Z,"
                                     "2026-12-01T01:00:00Z,300\n")
    (home / "easyflow.toml").write_text('[carbon]\nforecast = "carbon.csv"\n')
    document = json.loads(runner.invoke(app, ["report", "advise", "--json"]).stdout)
    assert document["carbon_source"] == "csv from carbon.csv"
    (home / "carbon.csv").write_text("start,end,value\nsoon,later,300\n")
    done = runner.invoke(app, ["report", "advise"])
    assert done.exit_code == 2 and "carbon.csv:2" in done.stderr
