import pytest

from easyflow_cli.core.errors import SpecErrors
from easyflow_cli.core.workflow_files import load_workflow_files, parse_workflow_file


def test_relative_cwd_is_resolved_against_the_file(write, tmp_path):
    path = write("a.toml", 'name = "a"\n[[steps]]\nrun = ["true"]\ncwd = "sub"\n')
    spec = parse_workflow_file(path)
    assert spec.steps[0].cwd == str((tmp_path / "wf" / "sub").resolve())
    assert spec.source_dir == str((tmp_path / "wf").resolve())


def test_load_directory_all_or_nothing(write, tmp_path):
    write("a.toml", 'name = "a"\n[[steps]]\nrun = ["true"]\n')
    write("b.toml", 'name = "b"\n[[steps]]\nrun = ["true"]\ntimeout = "soon"\n')
    with pytest.raises(SpecErrors) as caught:
        load_workflow_files([tmp_path / "wf"])
    assert [str(e) for e in caught.value.errors] == [
        f"{tmp_path / 'wf' / 'b.toml'}:4: steps[0].timeout: bad duration 'soon': "
        "write it like '30s', '5m', '2h', '1d' or '1h30m'"
    ]


def test_duplicate_names_across_files(write, tmp_path):
    write("a.toml", 'name = "same"\n[[steps]]\nrun = ["true"]\n')
    write("b.toml", '# comment\nname = "same"\n[[steps]]\nrun = ["true"]\n')
    with pytest.raises(SpecErrors) as caught:
        load_workflow_files([tmp_path / "wf"])
    (error,) = caught.value.errors
    assert error.line == 2 and "duplicate workflow name 'same'" in str(error)


def test_missing_path_and_empty_dir(tmp_path):
    with pytest.raises(SpecErrors, match="no such file or directory"):
        load_workflow_files([tmp_path / "nope.toml"])
    (tmp_path / "empty").mkdir()
    with pytest.raises(SpecErrors, match="no \\*.toml files"):
        load_workflow_files([tmp_path / "empty"])


def test_not_utf8(tmp_path):
    path = tmp_path / "bin.toml"
    path.write_bytes(b"name = '\xff\xfe'\n")
    with pytest.raises(SpecErrors, match="not UTF-8"):
        load_workflow_files([path])


def test_examples_all_parse(examples):
    specs = load_workflow_files([examples])
    assert {s.name for s in specs} == {
        "invoice-download", "dashboard-refresh", "weekly-analytics", "data-sync"}
