import json
from pathlib import Path

from typer.testing import CliRunner

from easyflow_cli.cli.main import app

runner = CliRunner()


def invoke(*args):
    return runner.invoke(app, list(args))


def test_runs_list_show_filters(home, write):
    path = write("w.toml", 'name = "w"\n[[steps]]\nrun = ["true"]\n')
    bad = write("b.toml", 'name = "b"\n[[steps]]\nrun = ["false"]\n')
    invoke("workflow", "add", str(path), str(bad))
    invoke("run", "w", "--now")
    invoke("run", "b", "--now")
    runs = json.loads(invoke("runs", "list", "--json").stdout)
    assert [(r["workflow"], r["state"]) for r in runs] == [("b", "failed"), ("w", "succeeded")]
    only = json.loads(invoke("runs", "list", "--state", "failed", "--json").stdout)
    assert [r["workflow"] for r in only] == ["b"]
    assert len(json.loads(invoke("runs", "list", "-w", "w", "--json").stdout)) == 1
    assert len(json.loads(invoke("runs", "list", "--limit", "1", "--json").stdout)) == 1
    csv_lines = invoke("runs", "list", "--csv").stdout.splitlines()
    assert csv_lines[0].startswith("id,workflow,trigger,mode,mode_reason,state")
    assert len(csv_lines) == 3
    shown = json.loads(invoke("runs", "show", str(runs[0]["id"]), "--json").stdout)
    assert shown.pop("attempts") == [{"id": runs[0]["id"], "attempt": 1, "state": "failed",
                                      "exit_code": 1, "finished_at": runs[0]["finished_at"]}]
    assert shown.pop("receipt")["price_source"] == "pool prices"
    assert shown == runs[0]
    table = invoke("runs", "show", str(runs[0]["id"])).stdout
    assert "mode_reason" in table and "Ran at " in table


def test_runs_show_prints_the_receipt_of_a_run_under_a_tariff_and_a_forecast(
        home, write, tmp_path, monkeypatch):
    from datetime import UTC, datetime, timedelta

    day = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(hours=12)
    hours = [(day + timedelta(hours=h)).isoformat() for h in range(25)]
    (tmp_path / "tariff.csv").write_text("start,end,value\n" + "".join(
        f"{a},{b},0.25\n" for a, b in zip(hours, hours[1:], strict=False)))
    (tmp_path / "carbon.csv").write_text("start,end,value\n" + "".join(
        f"{a},{b},300\n" for a, b in zip(hours, hours[1:], strict=False)))
    config = tmp_path / "easyflow.toml"
    config.write_text('[costs]\ntariff = "tariff.csv"\n[carbon]\nforecast = "carbon.csv"\n')
    monkeypatch.setenv("EASYFLOW_CONFIG", str(config))
    busy = 'name = "w"\n[[steps]]\nrun = ["python3", "-c", "sum(range(4_000_000))"]\n'
    invoke("workflow", "add", str(write("w.toml", busy)))  # some CPU time: energy to price
    assert invoke("run", "w", "--now").exit_code == 0
    receipt = json.loads(invoke("runs", "show", "1", "--json").stdout)["receipt"]
    assert receipt["price_source"] == "tariff: csv from tariff.csv"
    assert receipt["carbon_source"] == "csv from carbon.csv"
    assert receipt["carbon_g"] == receipt["baseline_carbon_g"] > 0  # real-time, at once
    assert receipt["saving_pct"] == 0.0 and receipt["energy_source"] in ("rapl", "estimate")
    line = invoke("runs", "show", "1").stdout
    assert "Ran at " in line and " instead of " in line and "g CO2 instead of" in line


def test_unknown_run_exit_2(home):
    result = invoke("runs", "show", "42")
    assert result.exit_code == 2 and result.output == (
        "error: unknown run 42 (see `easyflow runs list`)\n")
    assert invoke("logs", "42").exit_code == 2
    assert invoke("runs", "list", "--state", "sleeping").exit_code == 2


def test_a_run_changed_by_other_means_is_one_line_not_a_traceback(home, write):
    import sqlite3

    path = write("w.toml", 'name = "w"\n[[steps]]\nrun = ["true"]\n')
    invoke("workflow", "add", str(path))
    invoke("run", "w", "--now")
    with sqlite3.connect(home / "easyflow.db") as conn:
        conn.execute("UPDATE runs SET mode = 'turbo' WHERE id = 1")
    said = ("error: run 1: its mode is 'turbo', which easyflow never writes (the database was "
            "changed by other means); correct or delete that run\n")
    for args in (["runs", "list"], ["runs", "show", "1", "--json"], ["report", "costs"],
                 ["report", "latency", "--csv"]):
        result = invoke(*args)
        assert (result.exit_code, result.output) == (1, said), args


def test_runs_prune_says_what_it_removed_and_reports_still_count_it(home, write):
    path = write("w.toml", 'name = "w"\n[[steps]]\nrun = ["echo", "hello"]\n')
    invoke("workflow", "add", str(path))
    invoke("run", "w", "--now")
    invoke("run", "w", "--now")
    costs = json.loads(invoke("report", "costs", "--by", "day", "--json").stdout)
    logs = [Path(r["log_path"]) for r in json.loads(invoke("runs", "list", "--json").stdout)]
    size = sum(log.stat().st_size for log in logs)
    dry = json.loads(invoke("runs", "prune", "--older-than", "1ms", "--dry-run", "--json").stdout)
    assert (dry["runs"], dry["log_files"], dry["log_bytes"], dry["dry_run"]) == (2, 2, size, True)
    assert len(json.loads(invoke("runs", "list", "--json").stdout)) == 2
    done = invoke("runs", "prune", "--older-than", "1ms", "-w", "w")
    assert done.exit_code == 0
    assert done.stdout.startswith(f"removed 2 runs and 2 log files ({size} bytes)")
    assert not any(log.exists() for log in logs)
    assert json.loads(invoke("runs", "list", "--json").stdout) == []
    assert json.loads(invoke("report", "costs", "--by", "day", "--json").stdout) == costs
    again = json.loads(invoke("runs", "prune", "--older-than", "1ms", "--json").stdout)
    assert (again["runs"], again["log_files"], again["log_bytes"]) == (0, 0, 0)
    csv_lines = invoke("runs", "prune", "--older-than", "1ms", "--csv").stdout.splitlines()
    assert csv_lines[0] == "runs,log_files,log_bytes,dry_run,finished_before"
    assert csv_lines[1].startswith("0,0,0,")


def test_runs_prune_refuses_bad_input(home):
    for args in (["--older-than", "soon"], ["--older-than", "1d", "-w", "nope"], []):
        result = invoke("runs", "prune", *args)
        assert result.exit_code == 2 and "Traceback" not in result.output


def test_a_run_that_printed_nothing_has_no_log_file_and_an_empty_log(home, write):
    path = write("w.toml", 'name = "w"\n[[steps]]\nrun = ["true"]\n')
    invoke("workflow", "add", str(path))
    invoke("run", "w", "--now")
    run = json.loads(invoke("runs", "show", "1", "--json").stdout)
    assert run["state"] == "succeeded" and not Path(run["log_path"]).exists()
    for args in (["logs", "1"], ["logs", "1", "--tail", "5"], ["logs", "1", "-f"]):
        result = invoke(*args)
        assert (result.exit_code, result.stdout) == (0, ""), args


def test_runs_show_says_why_an_eco_run_waits_as_planned(store):
    from dataclasses import replace

    from easyflow_cli.core.model import Trigger
    from easyflow_cli.core.planning import QueuePolicy, plan_run
    from easyflow_cli.core.spec import parse_workflow_text
    from easyflow_cli.core.timeutil import utcnow

    spec = parse_workflow_text('name = "w"\n[[steps]]\nrun = ["true"]\n')
    store.save_workflows([spec], utcnow())
    planned = plan_run(spec, trigger=Trigger.SCHEDULE, now=utcnow(), policy=QueuePolicy())
    reason = "cheapest window 03:00–04:00 UTC, $0.0021 vs $0.0065 now"
    [run_id] = store.queue.enqueue([replace(planned, not_before_reason=reason)])
    shown = invoke("runs", "show", str(run_id))
    assert "planned" in shown.stdout and "cheapest window 03:00–04:00 UTC" in shown.stdout
    record = json.loads(invoke("runs", "show", str(run_id), "--json").stdout)
    assert record["not_before_reason"] == reason
