"""`easyflow simulate`: the period's runs read from the database and replayed; --json, --csv,
the table; bad input is one line and exit 2."""

import json
from datetime import timedelta

from typer.testing import CliRunner

from easyflow_cli.cli.main import app
from easyflow_cli.core.timeutil import to_iso, utcnow
from easyflow_cli.storage.sqlite_queue import insert_runs
from easyflow_cli.storage.store import Store

runner = CliRunner()
COLUMNS = ("workflow", "trigger", "mode", "mode_reason", "cost_priority", "priority_rank",
           "state", "enqueued_at", "started_at", "finished_at", "duration_s", "cpu_user_s",
           "deadline")


def invoke(*args):
    return runner.invoke(app, list(args))


def seed(home, hours_ago=(30, 20, 10), *, unfinished=False):
    now = utcnow().replace(minute=0, second=0, microsecond=0)
    rows = []
    for ago in hours_ago:
        at = now - timedelta(hours=ago)
        rows.append(("nightly", "schedule", "eco", "schedule", "normal", 1, "succeeded",
                     to_iso(at), to_iso(at), to_iso(at + timedelta(minutes=10)), 600.0, 600.0,
                     to_iso(at + timedelta(hours=12))))
    if unfinished:
        rows.append(("nightly", "schedule", "eco", "schedule", "normal", 1, "queued",
                     to_iso(now), None, None, None, None, None))
    with Store.open(home) as store:
        insert_runs(store, COLUMNS, rows)
    return now


def tariff(tmp_path, now):
    path = tmp_path / "tariff.csv"
    start = now - timedelta(hours=48)
    lines = ["start,end,value"]
    for hour in range(72):
        value = 0.01 if hour % 24 == 3 else 0.3
        lines.append(f"{to_iso(start + timedelta(hours=hour))},"
                     f"{to_iso(start + timedelta(hours=hour + 1))},{value}")
    path.write_text("\n".join(lines) + "\n")
    return path


def test_simulate_json_sets_the_projection_beside_what_happened(home, tmp_path):
    now = seed(home, unfinished=True)
    result = invoke("simulate", "--since", "2d", "--tariff", str(tariff(tmp_path, now)), "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert (report["runs"], report["policy"], report["optimise"]) == (3, "current", "cost")
    assert report["series"]["tariff"] == "csv from tariff.csv"
    assert report["projected"]["cost"] < report["actual"]["cost"]
    assert report["best_possible"]["cost"] <= report["projected"]["cost"]
    assert report["projected"]["deadline_misses"] == 0


def test_simulate_real_time_csv_and_table(home, tmp_path):
    seed(home)
    csv_text = invoke("simulate", "--policy", "real-time", "--csv").stdout
    assert csv_text.splitlines()[0].startswith("column,cost,carbon_g,deadline_misses")
    assert [line.split(",")[0] for line in csv_text.splitlines()[1:]] == [
        "actual", "projected", "best_possible"]
    table = invoke("simulate")
    assert table.exit_code == 0 and "3 runs replayed, policy current" in table.stdout


def test_simulate_bad_input_is_one_line_and_exit_2(home, tmp_path):
    bad = invoke("simulate", "--policy", "cheapest")
    assert bad.exit_code == 2 and "--policy: must be one of current, real-time, advised" in (
        bad.output)
    (tmp_path / "t.csv").write_text("start,end,value\nyesterday,today,1\n")
    unreadable = invoke("simulate", "--tariff", str(tmp_path / "t.csv"))
    assert unreadable.exit_code == 2
    assert "t.csv:2: start: not an ISO-8601 time" in unreadable.output
    assert "Traceback" not in unreadable.output
    assert invoke("simulate", "--since", "tomorrow").exit_code == 2
