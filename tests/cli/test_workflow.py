import json

from typer.testing import CliRunner

from easyflow_cli.cli.main import app
from easyflow_cli.storage.store import Store

runner = CliRunner()


def invoke(*args):
    return runner.invoke(app, list(args))


def test_help_for_every_group():
    for args in ([], ["workflow"], ["runs"], ["--help"], ["run", "--help"], ["logs", "--help"]):
        result = invoke(*args)
        assert "Usage" in result.output, args


def test_add_list_show_export_remove(home, examples, tmp_path):
    result = invoke("workflow", "add", str(examples))
    assert result.exit_code == 0, result.output
    assert "added invoice-download (2 steps, 1 schedule)" in result.output
    listed = json.loads(invoke("workflow", "list", "--json").stdout)
    assert [w["name"] for w in listed] == [
        "dashboard-refresh", "data-sync", "invoice-download", "weekly-analytics"]
    assert listed[1]["execution_mode"] == "balanced" and listed[1]["schedules"] == 1
    csv_out = invoke("workflow", "list", "--csv").stdout.splitlines()
    assert csv_out[0] == "name,execution_mode,cost_priority,steps,schedules,description"
    shown = json.loads(invoke("workflow", "show", "data-sync", "--json").stdout)
    assert shown["spec"]["execution_mode"] == "balanced"
    assert shown["schedules"][0]["expr"] == "15m"

    exported = tmp_path / "out" / "weekly.toml"
    exported.parent.mkdir()
    assert invoke("workflow", "export", "weekly-analytics", "-o", str(exported)).exit_code == 0
    first = exported.read_text()
    assert invoke("workflow", "remove", "weekly-analytics").exit_code == 0
    assert invoke("workflow", "add", str(exported)).exit_code == 0
    assert invoke("workflow", "export", "weekly-analytics").stdout == first


def test_export_round_trip_of_every_example(home, examples, tmp_path):
    invoke("workflow", "add", str(examples))
    for name in ("dashboard-refresh", "data-sync", "invoice-download", "weekly-analytics"):
        first = invoke("workflow", "export", name).stdout
        path = tmp_path / f"{name}.toml"
        path.write_text(first)
        with Store.open(home) as store:
            before = store.get_workflow(name)
        assert invoke("workflow", "add", str(path)).exit_code == 0
        with Store.open(home) as store:
            after = store.get_workflow(name)
        assert (after.steps, after.schedules, after.timeout) == (
            before.steps, before.schedules, before.timeout)
        assert invoke("workflow", "export", name).stdout == first


def test_broken_file_in_directory_adds_nothing(home, examples):
    (examples / "zz-broken.toml").write_text('name = "broken"\n[[steps]]\nrun = ["true"]\n'
                                             'timeout = "soon"\n')
    result = invoke("workflow", "add", str(examples))
    assert result.exit_code == 2
    assert result.output.count("\n") == 1
    assert result.output.startswith(f"error: {examples / 'zz-broken.toml'}:4: steps[0].timeout:")
    assert "Traceback" not in result.output
    assert json.loads(invoke("workflow", "list", "--json").stdout) == []


def test_syntax_error_exit_2(home, write):
    path = write("bad.toml", 'name = "x"\n[[steps]\n')
    result = invoke("workflow", "add", str(path))
    assert result.exit_code == 2
    assert f"error: {path}:2: TOML syntax error" in result.output


def test_unknown_workflow_exit_2(home):
    for args in (["workflow", "show", "nope"], ["workflow", "remove", "nope"],
                 ["workflow", "export", "nope"], ["run", "nope", "--now"]):
        result = invoke(*args)
        assert result.exit_code == 2, args
        assert result.output == "error: unknown workflow 'nope' (see `easyflow workflow list`)\n"


def test_empty_list_json(home):
    result = invoke("workflow", "list", "--json")
    assert result.exit_code == 0 and json.loads(result.stdout) == []
