"""Reports over a database seeded with known runs: golden JSON, by hand-computed numbers."""

import json

import pytest
from typer.testing import CliRunner

from easyflow_cli.cli.main import app
from easyflow_cli.cli.report_render import money, sparkline
from easyflow_cli.storage.store import Store
from tests.cli.test_svg import svg_text

runner = CliRunner()

# mode, off_peak, duration_s, cpu_s, workflow, started, finished, wait, deadline_met
RUNS = [
    ("real-time", 0, 3600, 1800, "a", "2026-11-24T09:00:00", "2026-11-24T10:00:00", 1, 1),
    ("real-time", 1, 1800, 0, "a", "2026-11-24T22:30:00", "2026-11-24T23:00:00", 3, 0),
    ("balanced", 0, 3600, 3600, "b", "2026-11-25T09:00:00", "2026-11-25T10:00:00", 10, None),
    ("eco", 1, 7200, 3600, "b", "2026-11-25T01:00:00", "2026-11-25T03:00:00", 100, None),
    ("eco", 0, 3600, 0, "b", "2026-11-25T11:00:00", "2026-11-25T12:00:00", 200, None),
]


def seed(home):
    with Store.open(home) as store, store.write() as conn:
        for mode, off_peak, duration, cpu, wf, started, finished, wait, met in RUNS:
            conn.execute(
                "INSERT INTO runs (workflow, trigger, mode, mode_reason, cost_priority,"
                " priority_rank, state, enqueued_at, claimed_at, started_at, finished_at,"
                " duration_s, cpu_user_s, cpu_system_s, queue_wait_s, off_peak, deadline_met,"
                " pool) VALUES (?, 'manual', ?, 'explicit', 'normal', 1, 'succeeded', ?, ?, ?,"
                " ?, ?, ?, 0, ?, ?, ?, ?)",
                (wf, mode, started + "Z", started + "Z", started + ".000000Z",
                 finished + ".000000Z", duration, cpu, wait, off_peak, met, mode))
        conn.execute(
            "INSERT INTO runs (workflow, trigger, mode, mode_reason, cost_priority, priority_rank,"
            " state, enqueued_at, finished_at) VALUES ('a', 'schedule', 'eco', 'schedule',"
            " 'normal', 1, 'cancelled', '2026-11-25T00:00:00.000000Z',"
            " '2026-11-25T00:00:01.000000Z')")


def invoke(*args):
    result = runner.invoke(app, list(args))
    assert result.exit_code == 0, result.output
    return result


def mode_row(runs, worker_hours, cpu_hours, energy_wh, cost, baseline, off_peak_runs):
    return {"runs": runs, "worker_hours": worker_hours, "cpu_hours": cpu_hours,
            "energy_wh": energy_wh, "cost": cost, "cost_per_run": round(cost / runs, 8),
            "baseline_cost": baseline, "savings": round(baseline - cost, 6),
            "off_peak_runs": off_peak_runs}


def test_cost_report_golden_json(home):
    seed(home)
    report = json.loads(invoke("report", "costs", "--json").stdout)
    assert report == {
        "currency": "USD",
        "period": {"since": None, "until": None, "workflow": None},
        "by": "mode",
        "by_mode": {
            "real-time": mode_row(2, 1.5, 0.5, 7.5, 0.13, 0.15, 1),
            "balanced": mode_row(1, 1.0, 1.0, 15.0, 0.08, 0.10, 0),
            "eco": mode_row(2, 3.0, 1.0, 15.0, 0.09, 0.30, 1),
        },
        "total_runs": 5, "total_cost": 0.30, "baseline_cost": 0.55, "savings": 0.25,
        "savings_pct": 45.45, "worker_hours": 5.5, "cpu_hours": 2.5, "energy_wh": 37.5,
        "energy_source": "estimate", "carbon_g": 0.0, "baseline_carbon_g": 0.0,
        "watts_per_core": 15.0,
    }


def test_cost_report_by_workflow_and_day_and_filters(home):
    seed(home)
    by_workflow = json.loads(invoke("report", "costs", "--by", "workflow", "--json").stdout)
    assert [(g["key"], g["runs"], g["cost"]) for g in by_workflow["groups"]] == [
        ("a", 2, 0.13), ("b", 3, 0.17)]
    by_day = json.loads(invoke("report", "costs", "--by", "day", "--json").stdout)
    assert [(g["key"], g["runs"]) for g in by_day["groups"]] == [
        ("2026-11-24", 2), ("2026-11-25", 3)]
    only_b = json.loads(invoke("report", "costs", "--workflow", "b", "--json").stdout)
    assert only_b["total_runs"] == 3
    window = json.loads(invoke("report", "costs", "--since", "2026-11-25T00:00:00Z",
                               "--until", "2026-11-25T11:00:00Z", "--json").stdout)
    assert window["total_runs"] == 2 and window["total_cost"] == pytest.approx(0.12)


def test_latency_report_golden_json(home):
    seed(home)
    report = json.loads(invoke("report", "latency", "--json").stdout)
    assert report["by_mode"] == {
        "real-time": {"runs": 2, "queue_wait_s": {"p50": 1, "p95": 3, "p99": 3},
                      "duration_s": {"p50": 1800, "p95": 3600, "p99": 3600},
                      "deadlines_met": 1, "deadlines_missed": 1},
        "balanced": {"runs": 1, "queue_wait_s": {"p50": 10, "p95": 10, "p99": 10},
                     "duration_s": {"p50": 3600, "p95": 3600, "p99": 3600},
                     "deadlines_met": 0, "deadlines_missed": 0},
        "eco": {"runs": 2, "queue_wait_s": {"p50": 100, "p95": 200, "p99": 200},
                "duration_s": {"p50": 3600, "p95": 7200, "p99": 7200},
                "deadlines_met": 0, "deadlines_missed": 0},
    }


def test_latency_report_carries_attainment_of_each_objective(home):
    seed(home)
    attainment = json.loads(invoke("report", "latency", "--json").stdout)["attainment"]
    # a's real-time runs waited 1 s (kept) and 3 s (missed); b's all started in time.
    assert attainment["by_mode"] == {
        "real-time": {"runs": 2, "met": 1, "missed": 1, "attainment_pct": 50.0},
        "balanced": {"runs": 1, "met": 1, "missed": 0, "attainment_pct": 100.0},
        "eco": {"runs": 2, "met": 2, "missed": 0, "attainment_pct": 100.0},
    }
    assert attainment["by_workflow"] == {
        "a": {"runs": 2, "met": 1, "missed": 1, "attainment_pct": 50.0},
        "b": {"runs": 3, "met": 3, "missed": 0, "attainment_pct": 100.0},
    }
    assert attainment["worst"] == [{"workflow": "a", "mode": "real-time", "runs": 2, "met": 1,
                                    "missed": 1, "attainment_pct": 50.0}]
    assert attainment["objectives"]["real-time"] == {"start_within_s": 1.0}
    text = invoke("report", "latency").stdout
    assert "User satisfaction" in text and "start within 1s" in text and "Kept it least" in text
    csv_lines = invoke("report", "latency", "--csv").stdout.splitlines()
    assert csv_lines[0].endswith(",objective_met,objective_missed,attainment_pct")
    assert csv_lines[1].endswith(",1,1,50.0")


def test_pools_report(home):
    seed(home)
    report = json.loads(invoke("report", "pools", "--since", "2026-11-25T00:00:00Z", "--until",
                               "2026-11-25T12:00:00Z", "--buckets", "12", "--json").stdout)
    eco = report["pools"]["eco"]
    # eco: 01:00-03:00 and 11:00-12:00 = 3 busy hours of 2 workers x 12 h.
    assert eco["busy_hours"] == 3.0 and eco["utilization_pct"] == 12.5
    assert eco["utilization_series"][1:3] == [50.0, 50.0] and eco["utilization_series"][0] == 0
    assert report["pools"]["balanced"]["busy_hours"] == 1.0
    assert report["queue_depth"]["now"] == {"real-time": 0, "balanced": 0, "eco": 0}


def test_tables_csv_and_svg(home, tmp_path):
    seed(home)
    text = invoke("report", "costs").stdout
    assert "Savings against all-real-time at peak price: $0.25 (45.5%)" in text
    assert "real-time" in invoke("report", "latency").stdout
    assert "▁" in invoke("report", "pools").stdout or "█" in invoke("report", "pools").stdout
    csv_lines = invoke("report", "costs", "--csv").stdout.splitlines()
    assert csv_lines[0] == ("mode,runs,worker_hours,cpu_hours,energy_wh,cost,cost_per_run,"
                            "baseline_cost,savings,off_peak_runs")
    assert csv_lines[1].startswith("real-time,2,1.5,0.5,7.5,0.13,")
    svg = tmp_path / "costs.svg"
    invoke("report", "costs", "--svg", str(svg))
    assert svg.read_text().startswith("<svg")
    shown = svg_text(svg.read_text())
    assert shown[:2] == ["easyflow report costs", "all runs up to now"]
    assert "Savings against all-real-time at peak price: $0.25 (45.5%)" in "\n".join(shown)


def test_bad_report_input_exit_2(home):
    for args in (["costs", "--by", "color"], ["costs", "--since", "lately"],
                 ["latency", "--since", "1d", "--until", "2d"], ["costs", "--workflow", "zz"]):
        result = runner.invoke(app, ["report", *args])
        assert result.exit_code == 2, args
        assert result.output.startswith("error: ")


def test_sparkline_and_money():
    assert sparkline([0, 50, 100], 100) == "▁▅█"
    assert sparkline([0, 0]) == "▁▁"
    assert [money(v, "USD") for v in (None, 0, 1234.5, 0.00012)] == ["-", "$0.00", "$1,234.50",
                                                                      "$0.00012"]
