"""What the CLI loads before it does anything: `easyflow --help` must stay cheap to start."""

import json
import subprocess
import sys

HEAVY = ("sqlite_utils", "apscheduler", "rich", "easyflow_cli.daemon", "easyflow_cli.store")


def modules_after(code: str) -> set[str]:
    script = f"import sys, json\n{code}\nprint(json.dumps(sorted(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         check=True).stdout
    return set(json.loads(out.splitlines()[-1]))


def loaded(modules: set[str], package: str) -> bool:
    return any(m == package or m.startswith(package + ".") for m in modules)


def test_importing_the_cli_loads_no_heavy_module():
    modules = modules_after("import easyflow_cli.cli.main")
    assert [p for p in HEAVY if loaded(modules, p)] == []


def test_help_loads_no_heavy_module():
    code = ("from easyflow_cli.cli.main import app\n"
            "try:\n    app(['--help'])\nexcept SystemExit:\n    pass")
    modules = modules_after(code)
    assert not loaded(modules, "sqlite_utils")
    assert not loaded(modules, "apscheduler")
    assert not loaded(modules, "rich")


def test_plain_options_do_not_load_pydantic(tmp_path, monkeypatch):
    """Typer coerces through pydantic; a string argument and options left out need none of it."""
    monkeypatch.setenv("EASYFLOW_HOME", str(tmp_path / "home"))
    code = ("from easyflow_cli.cli.main import app\n"
            "try:\n    app(['run', 'missing', '--now', '--no-wait'])\nexcept SystemExit:\n    pass")
    assert not loaded(modules_after(code), "pydantic")


def test_typed_options_still_get_typer_checks(home):
    from typer.testing import CliRunner

    from easyflow_cli.cli.main import app

    result = CliRunner().invoke(app, ["runs", "list", "--limit", "0"])
    assert result.exit_code == 2
    assert "greater than or equal to 1" in result.output
    result = CliRunner().invoke(app, ["run", "x", "--now", "--mode", "fast"])
    assert result.exit_code == 2
    assert "'fast' is not one of 'real-time', 'balanced', 'eco'" in result.output
