import json

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
    assert shown == runs[0]
    table = invoke("runs", "show", str(runs[0]["id"])).stdout
    assert "mode_reason" in table


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
