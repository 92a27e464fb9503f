"""The entry's fast paths print, exit and write exactly what the Typer app does.

`easyflow`, `--help`, `-h` (fast_help) and `run NAME --now --no-wait` with a daemon up
(fast_run) skip Typer; each case here runs the installed `easyflow` and the Typer app
(`easyflow_cli.cli.main`, in a process of its own under the same program name) side by side.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from datetime import datetime

import pytest
from typer.testing import CliRunner

from easyflow_cli.cli import fast_run
from easyflow_cli.cli.fast_help import terminal_columns, typer_output, typer_root_help
from easyflow_cli.cli.main import app
from easyflow_cli.cli.root_help import ROOT_HELP
from easyflow_cli.core.model import Mode
from tests.conftest import easyflow_command, subprocess_env

pytest_plugins = ["tests.daemon_harness"]

REGENERATE = ".venv/bin/python -m easyflow_cli.cli.fast_help"


def installed_script() -> list[str]:
    command = easyflow_command()
    if len(command) != 1:
        pytest.skip("no installed `easyflow` script next to this Python")
    return command


def outcome(done: subprocess.CompletedProcess) -> tuple[int, str, str]:
    return done.returncode, done.stdout, done.stderr


# ---------------------------------------------------------------------- root help


def test_committed_root_help_is_what_typer_prints():
    assert typer_root_help() == ROOT_HELP, f"the Typer app's help changed: run `{REGENERATE}`"


@pytest.mark.parametrize("args, columns", [
    ([], None), (["--help"], None), (["-h"], None),
    (["--help"], "200"), (["--help"], "60"),   # 60: narrower than the committed text
    (["--help", "run"], None),                 # not a form the fast path answers
])
def test_root_help_matches_typer(tmp_path, args, columns):
    env = subprocess_env(tmp_path / "home")
    env.pop("COLUMNS", None)
    if columns:
        env["COLUMNS"] = columns
    fast = subprocess.run([*installed_script(), *args], env=env, text=True,
                          capture_output=True, stdin=subprocess.DEVNULL)
    assert outcome(fast) == outcome(typer_output(args, env))


def test_completion_requests_go_to_typer(tmp_path):
    env = {**subprocess_env(tmp_path / "home"), "_EASYFLOW_COMPLETE": "bash_complete",
           "COMP_WORDS": "easyflow ", "COMP_CWORD": "1"}
    fast = subprocess.run([*installed_script(), "--help"], env=env, text=True,
                          capture_output=True, stdin=subprocess.DEVNULL)
    assert outcome(fast) == outcome(typer_output(["--help"], env))


@pytest.mark.parametrize("value", [None, "", "abc", "0", "-3", "60", "80", "300"])
def test_terminal_columns_are_shutils(monkeypatch, value):
    monkeypatch.delenv("COLUMNS", raising=False)
    if value is not None:
        monkeypatch.setenv("COLUMNS", value)
    assert terminal_columns() == shutil.get_terminal_size().columns


def test_python_m_still_runs_the_cli(tmp_path):
    done = subprocess.run([sys.executable, "-m", "easyflow_cli", "--help"], text=True,
                          capture_output=True, env=subprocess_env(tmp_path / "home"))
    assert done.returncode == 0
    assert done.stdout.startswith("Usage: python -m easyflow_cli [OPTIONS] COMMAND")


# ---------------------------------------------------------------------- run --now --no-wait


@pytest.mark.parametrize("args, expected", [
    (["w", "--now", "--no-wait"], ("w", None, None, False)),
    (["--no-wait", "w", "--json", "--now"], ("w", None, None, True)),
    (["w", "--now", "--no-wait", "--mode", "eco", "--deadline", "2h"],
     ("w", Mode.ECO, "2h", False)),
    (["w", "--now"], None),                           # follows the run: Typer's
    (["w", "--no-wait"], None),
    (["w", "--now", "--no-wait", "--quote"], None),
    (["w", "--now", "--no-wait", "--mode", "fast"], None),
    (["w", "--now", "--no-wait", "--mode", "ECO"], None),
    (["w", "--now", "--no-wait", "--deadline=2h"], None),
    (["w", "--now", "--no-wait", "--deadline"], None),
    (["w", "--now", "--no-wait", "--deadline", "--json"], None),
    (["w", "--now", "--no-wait", "--json", "--json"], None),
    (["w", "v", "--now", "--no-wait"], None),
    (["--now", "--no-wait"], None),
    (["w", "--now", "--no-wait", "--"], None),
    (["-", "--now", "--no-wait"], None),
    (["w", "--now", "--no-wait", "-h"], None),
])
def test_fast_run_reads_only_what_it_knows(args, expected):
    request = fast_run.parse(args)
    assert (tuple(request) if request else None) == expected


TIMES = ("enqueued_at", "deadline", "not_before", "promote_at")


def assert_same_run(fast: dict, typer: dict, case) -> None:
    """Two runs submitted a moment apart: the same but for the id, and times that are the
    same or as far from when each was enqueued."""
    assert fast.keys() == typer.keys(), case
    for key, value in fast.items():
        if key == "id":
            continue
        if key in TIMES and value and typer[key] and value != typer[key]:
            assert (_since_enqueued(fast, key) == _since_enqueued(typer, key)), (case, key)
        else:
            assert value == typer[key], (case, key)


def _since_enqueued(run: dict, key: str) -> float:
    return (datetime.fromisoformat(run[key][:-1])
            - datetime.fromisoformat(run["enqueued_at"][:-1])).total_seconds()


def without_ids(text: str) -> str:
    return re.sub(r"\d+", "N", text)


RUN_CASES = [
    ["w", "--now", "--no-wait"],
    ["w", "--now", "--no-wait", "--json"],
    ["--no-wait", "w", "--json", "--now", "--mode", "eco"],
    ["w", "--now", "--no-wait", "--json", "--deadline", "30m"],       # promoted at once
    ["w", "--now", "--no-wait", "--json", "--mode", "eco", "--deadline", "90m"],
    ["w", "--now", "--no-wait", "--json", "--deadline", "2030-01-01T00:00:00Z"],
    ["w", "--now", "--no-wait", "--mode", "balanced", "--deadline", "2030-01-01T09:00"],
    ["pinned", "--json", "--now", "--no-wait"],
    ["pinned", "--now", "--no-wait", "--mode", "real-time"],
    # errors, and forms the fast path leaves to Typer
    ["missing", "--now", "--no-wait"],
    ["w", "--now", "--no-wait", "--mode", "turbo"],
    ["w", "--now", "--no-wait", "--deadline", "whenever"],
    ["w", "--now", "--no-wait", "--bogus"],
    ["w", "--now", "--no-wait", "--json", "--deadline=30m"],
]


@pytest.mark.e2e
def test_run_now_no_wait_matches_typer(daemon):
    # One worker per pool, each kept busy, so every run submitted below stays queued: what
    # `--no-wait` prints and what the database holds cannot depend on the daemon's speed.
    daemon.write_config("""
        [pools.real-time]
        workers = 1
        [pools.balanced]
        workers = 1
        [pools.eco]
        workers = 1
        off_peak = ""
        """)
    daemon.add_workflows(block=["sleep", "600"], w=["true"])
    daemon.add_workflow("pinned", ["true"], execution_mode="balanced", cost_priority="high",
                        deadline_after="3h")
    daemon.start()
    for mode in Mode:
        daemon.submit("block", "--mode", mode.value)
    daemon.wait_for_runs(lambda runs: [r["state"] for r in runs] == ["running"] * 3,
                         workflow="block", message="every pool to be busy")

    for args in RUN_CASES:
        case = " ".join(args)
        known = {r["id"] for r in daemon.peek_runs()}
        fast = daemon.cli("run", *args, check=False)
        fast_rows = [r for r in daemon.peek_runs() if r["id"] not in known]
        known |= {r["id"] for r in fast_rows}
        typer = typer_output(["run", *args], daemon.env())
        typer_rows = [r for r in daemon.peek_runs() if r["id"] not in known]

        assert fast.returncode == typer.returncode, (case, fast.stderr, typer.stderr)
        assert without_ids(fast.stderr) == without_ids(typer.stderr), case
        if "--json" in args and fast.returncode == 0:
            assert_same_run(json.loads(fast.stdout), json.loads(typer.stdout), case)
        else:
            assert without_ids(fast.stdout) == without_ids(typer.stdout), case
        assert len(fast_rows) == len(typer_rows) == (1 if fast.returncode == 0 else 0), case
        for fast_row, typer_row in zip(fast_rows, typer_rows, strict=True):
            assert fast_row["state"] == "queued", case
            assert_same_run(fast_row, typer_row, case)


def test_a_daemon_that_stops_answering_gets_the_run_done_here(home, write, monkeypatch,
                                                             capfdbinary):
    """Connected, but no answer to the wake-up (the daemon died meanwhile): like Typer's `run`
    when its wake-up finds no daemon, the run is executed in this process."""
    path = write("w.toml", 'name = "w"\n[[steps]]\nrun = ["echo", "from the step"]\n')
    assert CliRunner().invoke(app, ["workflow", "add", str(path)]).exit_code == 0
    monkeypatch.setattr(fast_run, "connect", lambda home: _Closed())
    monkeypatch.setattr(fast_run, "exchange", lambda sock, request: None)

    assert fast_run.submit(["w", "--now", "--no-wait", "--json"]) == 0
    out, err = (stream.decode() for stream in capfdbinary.readouterr())
    record = json.loads(out)
    assert (record["state"], record["exit_code"]) == ("succeeded", 0)
    assert f"run {record['id']}: w in real-time mode (manual)" in err
    assert "from the step" in err
    assert f"run {record['id']} succeeded in " in err


class _Closed:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return None
