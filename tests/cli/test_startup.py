"""What the CLI loads before it does anything: `easyflow --help` must stay cheap to start."""

import contextlib
import json
import os
import socket
import subprocess
import sys
import threading

HEAVY = ("sqlite_utils", "apscheduler", "rich", "easyflow_cli.runtime.daemon",
         "easyflow_cli.storage.store")


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


# ---------------------------------------------------------------------- the entry's fast paths

FAST_PATH_FORBIDDEN = ("typer", "click", "rich", "sqlite_utils", "apscheduler", "pydantic",
                       "easyflow_cli.cli.main", "easyflow_cli.runtime.daemon")


def fast_path_modules(args: list[str], env: dict[str, str] | None = None) -> set[str]:
    """The modules loaded once `easyflow ARGS` was answered by the entry's fast path (which
    must have answered it: a fall-through to Typer fails here)."""
    code = (f"import sys\nsys.argv = ['easyflow', *{args!r}]\n"
            "from easyflow_cli.cli.entry import fast_path\n"
            "assert fast_path(sys.argv[1:]) is not None, 'left to Typer'")
    script = f"import sys, json\n{code}\nprint(json.dumps(sorted(sys.modules)))"
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          env=env, check=True)
    return set(json.loads(done.stdout.splitlines()[-1]))


def test_root_help_loads_nothing_heavy():
    for args in ([], ["--help"], ["-h"]):
        modules = fast_path_modules(args, env={**os.environ, "COLUMNS": "100"})
        assert [p for p in FAST_PATH_FORBIDDEN if loaded(modules, p)] == [], args
        assert not loaded(modules, "easyflow_cli.storage.store")


def test_run_now_no_wait_loads_nothing_heavy(home):
    from easyflow_cli.core.spec import parse_workflow_text
    from easyflow_cli.core.timeutil import utcnow
    from easyflow_cli.storage.store import Store

    with Store.open(home) as store:
        store.save_workflows([parse_workflow_text('name = "w"\n[[steps]]\nrun = ["true"]\n')],
                             utcnow())
    with answering_socket(home / "easyflow.sock"):
        modules = fast_path_modules(["run", "w", "--now", "--no-wait", "--json", "--mode",
                                     "eco", "--deadline", "2h"])
    assert [p for p in FAST_PATH_FORBIDDEN if loaded(modules, p)] == []


@contextlib.contextmanager
def answering_socket(path):
    """Something on the daemon's socket that answers every request `{"ok": true}`, as the
    daemon does a wake-up: enough for the CLI to believe a daemon is up."""
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(str(path))
    listener.listen()
    listener.settimeout(0.1)
    stop = threading.Event()

    def serve():
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            with conn:
                conn.settimeout(5)
                if conn.recv(65536):
                    conn.sendall(b'{"ok": true}\n')

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()
        listener.close()
