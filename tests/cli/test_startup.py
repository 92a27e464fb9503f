"""What the CLI loads before it does anything: `easyflow --help` must stay cheap to start."""

import contextlib
import json
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


def test_typed_options_still_get_typer_checks(home):
    from typer.testing import CliRunner

    from easyflow_cli.cli.main import app

    result = CliRunner().invoke(app, ["runs", "list", "--limit", "0"])
    assert result.exit_code == 2
    assert "--limit: 0 is out of range; give 1 to 1,000,000" in result.output
    result = CliRunner().invoke(app, ["run", "x", "--now", "--mode", "fast"])
    assert result.exit_code == 2
    assert "--mode: 'fast' is not a mode (real-time, balanced, eco)" in result.output


# ---------------------------------------------------------------------- whole commands

# What help must not load: the storage and runtime layers, Rich, sqlite3.
HELP_FORBIDDEN = (*HEAVY, "sqlite3", "easyflow_cli.storage", "easyflow_cli.runtime")
# What `run NAME --now --no-wait` must not load: it only queues a run and wakes the daemon.
RUN_FORBIDDEN = ("sqlite_utils", "apscheduler", "rich", "easyflow_cli.runtime.daemon",
                 "easyflow_cli.runtime.foreground", "easyflow_cli.runtime.executor",
                 "easyflow_cli.cli.follow", "easyflow_cli.reporting", "easyflow_cli.tools")


def command_modules(args: list[str], env: dict[str, str] | None = None) -> set[str]:
    """The modules loaded once `easyflow ARGS` ran to its end in this process (it must exit 0)."""
    code = (f"import sys\nsys.argv = ['easyflow', *{args!r}]\n"
            "from easyflow_cli.cli.main import main\n"
            "try:\n    main()\nexcept SystemExit as exc:\n"
            "    assert exc.code in (0, None), exc.code\n")
    script = f"import sys, json\n{code}\nprint(json.dumps(sorted(sys.modules)))"
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          env=env, check=True)
    return set(json.loads(done.stdout.splitlines()[-1]))


def test_help_loads_nothing_heavy():
    for args in (["--help"], ["-h"], ["run", "--help"], ["report", "costs", "--help"]):
        modules = command_modules(args)
        assert [p for p in HELP_FORBIDDEN if loaded(modules, p)] == [], args


def test_root_help_coerces_no_value():
    """Typer loads pydantic to coerce a parameter's value; the root's help has none to coerce."""
    for args in (["--help"], ["-h"]):
        assert not loaded(command_modules(args), "pydantic"), args


def test_run_now_no_wait_loads_nothing_heavy(home):
    from easyflow_cli.core.spec import parse_workflow_text
    from easyflow_cli.core.timeutil import utcnow
    from easyflow_cli.storage.store import Store

    with Store.open(home) as store:
        store.save_workflows([parse_workflow_text('name = "w"\n[[steps]]\nrun = ["true"]\n')],
                             utcnow())
    with answering_socket(home / "easyflow.sock"):
        for args in (["w", "--now", "--no-wait", "--json", "--mode", "eco", "--deadline", "2h"],
                     ["w", "w", "--now", "--no-wait", "--count", "3"]):
            modules = command_modules(["run", *args])
            assert [p for p in RUN_FORBIDDEN if loaded(modules, p)] == [], args
    with Store.open(home) as store:
        assert len(store.conn.execute("SELECT id FROM runs").fetchall()) == 1 + 6


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


def command_modules_of_the_table() -> set[str]:
    from easyflow_cli.cli.main import COMMANDS

    return {entry.target.partition(":")[0] for entry in COMMANDS.values()}


def test_root_help_and_version_import_no_command():
    for args in (["--help"], ["--version"]):
        assert command_modules(args) & command_modules_of_the_table() == set(), args


# What `why RUN_ID` must not load for a finished run: it reads a few rows and prints lines
# (pydantic is what Typer from 0.29 on coerces every value with; csv reads a price series,
# and none is configured here).
WHY_FORBIDDEN = ("sqlite_utils", "apscheduler", "rich", "pydantic", "csv", "easyflow_cli.runtime",
                 "easyflow_cli.tools", "easyflow_cli.scheduling", "easyflow_cli.reporting.reports",
                 "easyflow_cli.reporting.accounting")


def test_why_imports_its_command_alone_and_nothing_heavy(home):
    from easyflow_cli.tools.bench_reports import seed_report_history

    seed_report_history(home, 3)
    modules = command_modules(["why", "2"])
    assert modules & command_modules_of_the_table() == {"easyflow_cli.cli.why"}
    assert [p for p in WHY_FORBIDDEN if loaded(modules, p)] == []
