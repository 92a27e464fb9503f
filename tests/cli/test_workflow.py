import json

from typer.testing import CliRunner

from easyflow_cli.cli.main import app
from easyflow_cli.core.spec import portable
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
    assert csv_out[0] == ("name,execution_mode,cost_priority,steps,schedules,description,"
                          "max_concurrent,disabled")
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
            before = portable(store.get_workflow(name), store.schedule_specs(name))
        assert invoke("workflow", "add", "--replace", str(path)).exit_code == 0
        with Store.open(home) as store:
            after = store.get_workflow(name)
        assert (after.steps, after.schedules, after.timeout) == (
            before.steps, before.schedules, before.timeout)
        assert all(step.cwd == str(examples) for step in after.steps)
        assert invoke("workflow", "export", name).stdout == first


def test_export_works_from_any_folder_with_every_schedule(home, tmp_path, monkeypatch):
    project = tmp_path / "project"
    (project / "scripts").mkdir(parents=True)
    (project / "scripts" / "hello.py").write_text("print('hello from', __file__)\n")
    (project / "helpers.py").write_text("def greet():\n    print('hi from helpers')\n")
    (project / "hello.toml").write_text(
        'name = "hello"\n[[steps]]\nrun = ["python3", "scripts/hello.py"]\n'
        '[[steps]]\ncall = "helpers:greet"\n[[schedules]]\ncron = "0 3 * * *"\n')
    assert invoke("workflow", "add", str(project / "hello.toml")).exit_code == 0
    assert invoke("schedule", "add", "hello", "--every", "2h", "--mode", "balanced").exit_code == 0
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    assert invoke("workflow", "export", "hello", "-o", "hello.toml").exit_code == 0
    text = (elsewhere / "hello.toml").read_text()
    assert text.count(f'cwd = "{project}"') == 2
    assert 'cron = "0 3 * * *"' in text and 'every = "2h"' in text
    # Another state directory, the file in another folder: the workflow is the same and runs.
    monkeypatch.setenv("EASYFLOW_HOME", str(tmp_path / "other-home"))
    assert invoke("workflow", "add", "hello.toml").exit_code == 0
    result = invoke("run", "hello", "--now")
    assert result.exit_code == 0, result.output
    assert f"hello from {project}/scripts/hello.py" in result.stdout
    assert "hi from helpers" in result.stdout
    schedules = json.loads(invoke("schedule", "list", "--json").stdout)
    assert [(s["kind"], s["expr"], s["mode"]) for s in schedules] == [
        ("cron", "0 3 * * *", None), ("every", "2h", "balanced")]


def test_exported_file_added_back_keeps_one_of_each_schedule(home, write, tmp_path):
    path = write("w.toml", 'name = "w"\n[[steps]]\nrun = ["true"]\n')
    assert invoke("workflow", "add", str(path)).exit_code == 0
    assert invoke("schedule", "add", "w", "--every", "2h").exit_code == 0
    path.write_text(invoke("workflow", "export", "w").stdout)
    assert invoke("workflow", "add", str(path)).exit_code == 0
    schedules = json.loads(invoke("schedule", "list", "--json").stdout)
    assert [(s["id"], s["expr"], s["origin"]) for s in schedules] == [(1, "2h", "file")]


def test_same_name_from_another_file_needs_replace(home, write, tmp_path):
    first = write("a/w.toml", 'name = "w"\n[[steps]]\nrun = ["true"]\n')
    second = write("b/w.toml", 'name = "w"\n[[steps]]\nrun = ["false"]\n')
    assert invoke("workflow", "add", str(first)).exit_code == 0
    assert invoke("workflow", "add", str(first)).exit_code == 0  # the same file: an update
    result = invoke("workflow", "add", str(second))
    assert result.exit_code == 2
    assert result.output == (f"error: workflow 'w' is already registered from {first}; "
                             f"add --replace to replace it with {second}\n")
    assert json.loads(invoke("workflow", "show", "w", "--json").stdout)["source_file"] == str(
        first)
    result = invoke("workflow", "add", "--replace", str(second))
    assert result.exit_code == 0 and f"updated w (1 step, 0 schedules) from {second}" in (
        result.output)


def test_show_lists_every_schedule(home, write):
    path = write("w.toml", 'name = "w"\n[[steps]]\nrun = ["true"]\n'
                           '[[schedules]]\ncron = "0 3 * * *"\n')
    assert invoke("workflow", "add", str(path)).exit_code == 0
    assert invoke("schedule", "add", "w", "--every", "2h").exit_code == 0
    shown = invoke("workflow", "show", "w").stdout
    rows = [line for line in shown.splitlines() if "│ w " in line]
    assert len(rows) == 2
    assert "0 3 * * *" in rows[0] and "file" in rows[0]
    assert "2h" in rows[1] and "cli" in rows[1]


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


def test_disable_refuses_run_now_unless_forced_and_survives_adding_again(home, write):
    path = write("w.toml", 'name = "w"\nmax_concurrent = 2\n[[steps]]\nrun = ["true"]\n')
    assert invoke("workflow", "add", str(path)).exit_code == 0
    assert invoke("workflow", "disable", "w").exit_code == 0
    refused = invoke("run", "w", "--now")
    assert refused.exit_code == 2
    assert "workflow 'w' is disabled: `easyflow workflow enable w`" in refused.output
    with Store.open(home) as store:
        assert store.queue.latest() == []
    assert invoke("workflow", "add", str(path)).exit_code == 0
    [row] = json.loads(invoke("workflow", "list", "--json").stdout)
    assert (row["disabled"], row["max_concurrent"]) == (True, 2)
    assert invoke("workflow", "list", "--csv").stdout.splitlines()[1].endswith(",2,true")
    assert json.loads(invoke("workflow", "show", "w", "--json").stdout)["disabled"] is True
    assert "(disabled" in invoke("workflow", "show", "w").output
    assert invoke("run", "w", "--now", "--force").exit_code == 0
    assert invoke("workflow", "enable", "w").exit_code == 0
    assert invoke("run", "w", "--now").exit_code == 0
    assert invoke("workflow", "disable", "nope").exit_code == 2
