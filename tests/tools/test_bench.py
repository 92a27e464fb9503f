"""`easyflow bench --quick --json`: the document's shape (the figures themselves are not judged
here; targets live in the bench, not in tests)."""

import json

import pytest
from typer.testing import CliRunner

from easyflow_cli.cli.main import app
from easyflow_cli.core.errors import BadInput
from easyflow_cli.core.stats import median
from easyflow_cli.tools import bench
from easyflow_cli.tools.bench import BenchSizes
from easyflow_cli.tools.bench_growth import GrowthSizes, parse_sizes
from easyflow_cli.tools.bench_reports import REPORT_COMMANDS

pytestmark = pytest.mark.e2e


def positive(value) -> bool:
    return isinstance(value, int | float) and value > 0


def tiny(quick: bool) -> BenchSizes:
    """What `--quick` measures, fewer times: the figures are not judged here, only the shape."""
    return BenchSizes(dispatch_samples=5, drain_callable_runs=50, drain_command_runs=10,
                      idle_seconds=1, library_enqueue_runs=1_000, cli_samples=2,
                      cli_bulk_runs=20, report_runs=2_000, isolation_samples=1, why_runs=500)


def test_quick_bench_json_document(home, monkeypatch):
    monkeypatch.setattr(BenchSizes, "for_mode", staticmethod(tiny))
    monkeypatch.setattr(bench, "ECO_BACKLOG", 200)
    result = CliRunner().invoke(app, ["bench", "--quick", "--json", "--backlog", "0,300",
                                      "--schedules", "0,20"])
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
    command = doc["drain"]["command"]
    ceilings, drains = command["spawn_ceilings_runs_per_s"], command["drains_runs_per_s"]
    assert len(ceilings) == len(drains) + 1 == bench.COMMAND_DRAINS + 1
    assert all(map(positive, ceilings + drains))
    assert command["spawn_ceiling_runs_per_s"] == round(median(ceilings), 1)
    assert command["runs_per_s"] == round(median(drains), 1)
    assert command["percent_of_ceiling"] == round(
        100 * command["runs_per_s"] / command["spawn_ceiling_runs_per_s"], 1)
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
    assert positive(report["database_mb_per_1m_runs"]) and report["summarize_s"] >= 0
    assert positive(report["generate_runs_per_s"]) and report["index_s"] >= 0
    for clock in ("cli_s", "cli_cpu_s"):
        assert report[clock].keys() == REPORT_COMMANDS.keys()
        assert all(positive(seconds) for seconds in report[clock].values())
    scrape = report["metrics_scrape"]
    assert positive(scrape["first_s"]) and positive(scrape["next_s"])
    assert positive(report["metrics_cli_s"])
    why = doc["why"]
    assert why["runs"] == 500
    assert why["bytecode_cached"] is True  # the worktree is writable: compiled as pip would
    for kind in ("finished", "queued"):
        assert positive(why[kind]["cold_ms"]["wall"]) and positive(why[kind]["cold_ms"]["cpu"])
        for clock in ("wall_ms", "cpu_ms"):
            assert why[kind][clock]["samples"] == 2 and positive(why[kind][clock]["median"])
    assert positive(doc["isolation"]["ratio"])
    assert all(row["met"] in (True, False) for row in doc["targets"])
    growth = doc["growth"]
    assert growth["samples"] == 5
    for curve, sizes in (("backlog", [0, 300]), ("schedules", [0, 20])):
        assert [point["size"] for point in growth[curve]] == sizes
        for point in growth[curve]:
            assert point["dispatch_ms"]["samples"] == 5 and positive(point["dispatch_ms"]["p50"])
            assert positive(point["daemon_cpu_ms_per_dispatch"])
        assert positive(growth[f"{curve}_p50_growth"]) and positive(growth[f"{curve}_cpu_growth"])


@pytest.mark.parametrize("text, sizes", [
    ("0,10000,100000,1000000", [0, 10_000, 100_000, 1_000_000]),
    ("1M, 10k,0,10_000", [0, 10_000, 1_000_000]),
    ("7", [7]),
])
def test_growth_sizes_are_counts_smallest_first(text, sizes):
    assert parse_sizes(text, "--backlog") == sizes


@pytest.mark.parametrize("text", ["", "ten", "-5", "1.5k", "10,,20", "k"])
def test_a_growth_size_that_is_no_count_is_bad_input(text):
    with pytest.raises(BadInput, match="^--schedules: .* is not a size"):
        parse_sizes(text, "--schedules")


def test_growth_defaults_leave_the_million_to_a_full_bench():
    assert GrowthSizes.parse(None, None, quick=True) == GrowthSizes((0, 10_000), (0, 1_000))
    assert GrowthSizes.parse(None, None, quick=False) == GrowthSizes(
        (0, 10_000, 100_000, 1_000_000), (0, 1_000, 10_000))
    assert GrowthSizes.parse("0,1M", "5", quick=True) == GrowthSizes((0, 1_000_000), (5,))


def test_bench_refuses_a_bad_size_before_measuring(home):
    result = CliRunner().invoke(app, ["bench", "--backlog", "0,lots"])
    assert result.exit_code == 2
    assert result.stderr.strip() == (
        "error: --backlog: 'lots' is not a size (give counts such as 0,10000,100k,1M)")
