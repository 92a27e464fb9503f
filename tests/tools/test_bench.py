"""`easyflow bench --quick --json`: the document's shape (the figures themselves are not judged
here; targets live in the bench, not in tests)."""

import json

import pytest
from typer.testing import CliRunner

from easyflow_cli.cli.main import app
from easyflow_cli.tools import bench
from easyflow_cli.tools.bench import BenchSizes

pytestmark = pytest.mark.e2e


def positive(value) -> bool:
    return isinstance(value, int | float) and value > 0


def tiny(quick: bool) -> BenchSizes:
    """What `--quick` measures, fewer times: the figures are not judged here, only the shape."""
    return BenchSizes(dispatch_samples=5, drain_callable_runs=50, drain_command_runs=10,
                      idle_seconds=1, library_enqueue_runs=1_000, cli_samples=2,
                      cli_bulk_runs=20, report_runs=2_000, isolation_samples=1)


def test_quick_bench_json_document(home, monkeypatch):
    monkeypatch.setattr(BenchSizes, "for_mode", staticmethod(tiny))
    monkeypatch.setattr(bench, "ECO_BACKLOG", 200)
    result = CliRunner().invoke(app, ["bench", "--quick", "--json"])
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert doc["quick"] is True and positive(doc["elapsed_s"])
    assert doc["machine"]["cpus"] >= 1 and doc["machine"]["cpu_steal_percent"] >= 0
    for scenario in ("idle", "eco_backlog"):
        for step in ("callable", "command"):
            dist = doc["dispatch_latency_ms"][scenario][step]
            assert dist["samples"] > 0
            assert all(positive(dist[k]) for k in ("median", "p50", "p95", "p99"))
    assert doc["dispatch_latency_ms"]["eco_backlog"]["eco_queued"] == 200
    for figure in ("command_first_instruction", "clock_command_own_start"):
        assert positive(doc["dispatch_latency_ms"]["eco_backlog"][figure]["p99"])
    assert positive(doc["drain"]["command"]["spawn_ceiling_runs_per_s"])
    assert positive(doc["drain"]["command"]["percent_of_ceiling"])
    for step in ("callable", "command"):
        assert positive(doc["drain"][step]["runs_per_s"])
    assert positive(doc["enqueue"]["library_bulk"]["runs_per_s"])
    assert positive(doc["enqueue"]["cli"]["runs_per_s"])
    assert doc["enqueue"]["cli_bulk"]["runs"] == 20
    assert positive(doc["enqueue"]["cli_bulk"]["runs_per_s"])
    for command in ("help", "run_now_no_wait"):
        assert positive(doc["cli_start_ms"][command]["median"])
    idle = doc["idle_daemon"]
    assert idle["seconds"] == 1 and idle["cpu_s"] >= 0 and idle["wakeups"] >= 0
    assert positive(idle["daemon_rss_mb"])
    assert set(idle["by_process"]) == {"daemon", "real-time", "balanced", "eco"}
    assert all(positive(mb) for group in idle["by_process"].values() for mb in group["rss_mb"])
    report = doc["reports"]
    assert report["runs"] == 2_000 and positive(report["library_s"])
    assert all(positive(seconds) for seconds in report["cli_s"].values())
    scrape = report["metrics_scrape"]
    assert positive(scrape["first_s"]) and positive(scrape["next_s"])
    assert positive(report["metrics_cli_s"])
    assert positive(doc["isolation"]["ratio"])
    assert all(row["met"] in (True, False) for row in doc["targets"])
