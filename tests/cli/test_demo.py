"""`easyflow demo`: the README's first command, through CliRunner with a real daemon process."""

import json

import pytest
from typer.testing import CliRunner

from easyflow_cli.cli.main import app
from easyflow_cli.core.paths import socket_path

runner = CliRunner()
pytestmark = pytest.mark.e2e


def test_demo_runs_every_mode_through_a_daemon_and_reports(home, examples):
    # The demo stops waiting for its runs after --timeout, and a loaded box can need more
    # than its default to settle the runs (its scheduled fires among them).
    result = runner.invoke(app, ["demo", str(examples), "--timeout", "300"])
    assert result.exit_code == 0, result.output
    assert "daemon stopped (exit status 0)" in result.stderr
    assert "Savings against all-real-time" in result.stdout
    assert "Latency by mode" in result.stdout

    runs = json.loads(runner.invoke(app, ["runs", "list", "--json", "--limit", "100"]).stdout)
    assert {r["state"] for r in runs} == {"succeeded"}
    manual = [r for r in runs if r["trigger"] == "manual"]
    assert sorted((r["workflow"], r["mode"]) for r in manual) == sorted(
        (w, m) for w in ("dashboard-refresh", "data-sync", "invoice-download", "weekly-analytics")
        for m in ("real-time", "balanced", "eco"))
    # The schedule is added before the daemon starts: when that start takes longer than a
    # slot (a loaded box), the slot missed is caught up once, then the schedule fires on time.
    scheduled = [r for r in runs if r["trigger"] in ("schedule", "catch-up")]
    assert len(scheduled) >= 3
    assert [r["trigger"] for r in scheduled].count("catch-up") <= 1
    assert {(r["workflow"], r["mode"], r["mode_reason"]) for r in scheduled} == {
        ("invoice-download", "eco", "schedule")}
    assert all(r["pool"] == r["mode"] for r in runs)

    costs = json.loads(runner.invoke(app, ["report", "costs", "--json"]).stdout)
    assert set(costs["by_mode"]) == {"real-time", "balanced", "eco"}
    assert costs["savings"] > 0
    # The demo's fast schedule is gone, and so is its daemon.
    schedules = json.loads(runner.invoke(app, ["schedule", "list", "--json"]).stdout)
    assert [s["origin"] for s in schedules] == ["file", "file", "file"]
    assert not socket_path(home).exists()


def test_demo_without_examples_is_bad_input(home, tmp_path):
    result = runner.invoke(app, ["demo", str(tmp_path / "nowhere")])
    assert result.exit_code == 2
    assert "nowhere" in result.stderr and "Traceback" not in result.output
