"""The installed `easyflow` command as scripts and people meet it: help, usage errors, and
`run --now --no-wait` (one run, or several in one go) against a running daemon.

Each case checks the exit code, stdout, stderr and the rows written to the database.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from easyflow_cli.cli.main import app
from easyflow_cli.core.model import Mode
from tests.conftest import easyflow_command, subprocess_env

pytest_plugins = ["tests.daemon_harness"]

COMMANDS = ("run", "logs", "daemon", "status", "metrics", "demo", "bench", "simulate",
            "workflow", "runs", "schedule", "report", "notify", "notifications", "why",
            "worker")


def easyflow(tmp_path, *args: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run([*easyflow_command(), *args], text=True, capture_output=True,
                          env=subprocess_env(tmp_path / "home", **env), stdin=subprocess.DEVNULL)


def listed_commands(help_text: str) -> list[str]:
    section = help_text.split("Commands:\n", 1)[1]
    return [line.split()[0] for line in section.splitlines() if line.startswith("  ")]


# ---------------------------------------------------------------------- help and usage errors


@pytest.mark.parametrize("flag", ["--help", "-h"])
def test_root_help_on_stdout(tmp_path, flag):
    done = easyflow(tmp_path, flag)
    assert (done.returncode, done.stderr) == (0, "")
    assert done.stdout.startswith("Usage: easyflow [OPTIONS] COMMAND [ARGS]...\n")
    assert sorted(listed_commands(done.stdout)) == sorted(COMMANDS)


@pytest.mark.parametrize("group", [[], ["runs"], ["workflow"], ["schedule"], ["report"]])
def test_a_bare_group_shows_its_help_as_a_usage_error(tmp_path, group):
    done = easyflow(tmp_path, *group)
    assert (done.returncode, done.stdout) == (2, "")
    assert done.stderr.startswith(f"Usage: {' '.join(['easyflow', *group])} [OPTIONS] COMMAND")
    assert easyflow(tmp_path, *group, "--help").stdout == done.stderr


def test_help_follows_the_terminal_width(tmp_path):
    narrow = easyflow(tmp_path, "--help", COLUMNS="50").stdout
    assert max(map(len, narrow.splitlines())) <= 50
    assert max(map(len, easyflow(tmp_path, "--help", COLUMNS="200").stdout.splitlines())) > 50


@pytest.mark.parametrize("args, message", [
    (["--bogus"], "error: easyflow: no option --bogus (see `easyflow --help`)"),
    (["runs", "--bogus"], "error: easyflow runs: no option --bogus (see `easyflow runs --help`)"),
    (["nosuch"], "error: easyflow: no command 'nosuch' (see `easyflow --help`)"),
    (["run"], "error: easyflow run: missing the workflow name (see `easyflow run --help`)"),
    (["runs", "list", "--limit", "0"], "error: easyflow runs list: --limit: 0 is out of range;"
                                       " give 1 to 1,000,000 (see `easyflow runs list --help`)"),
    (["run", "w", "--now", "--mode", "turbo"], "error: easyflow run: --mode: 'turbo' is not a mode"
                                               " (real-time, balanced, eco) (see `easyflow run "
                                               "--help`)"),
])
def test_usage_errors_are_one_line_and_exit_2(tmp_path, args, message):
    done = easyflow(tmp_path, *args)
    assert (done.returncode, done.stdout) == (2, "")
    assert done.stderr.count("\n") == 1 and done.stderr.startswith(message), done.stderr


def test_version(tmp_path):
    done = easyflow(tmp_path, "--version")
    assert (done.returncode, done.stdout) == (0, "easyflow 0.1.0\n")


def test_python_m_runs_the_same_app(tmp_path):
    done = subprocess.run([sys.executable, "-m", "easyflow_cli", "--help"], text=True,
                          capture_output=True, env=subprocess_env(tmp_path / "home"))
    assert done.returncode == 0
    assert done.stdout.startswith("Usage: python -m easyflow_cli [OPTIONS] COMMAND")


# ---------------------------------------------------------------------- run --now --no-wait


def ids_in(text: str) -> str:
    return re.sub(r"\d+", "N", text)


# argv, exit code, stdout and stderr (numbers as N; None: not compared), and for each run
# written: its workflow, mode and mode reason.
QUEUED = [
    (["w", "--now", "--no-wait"], 0, "N\n", "run N: w in real-time mode (manual)\n",
     [("w", "real-time", "manual")]),
    (["--no-wait", "w", "--json", "--now", "--mode", "eco"], 0, None,
     "run N: w in eco mode (explicit)\n", [("w", "eco", "explicit")]),
    (["w", "--now", "--no-wait", "--json", "--mode", "eco", "--deadline", "30m"], 0, None,
     "run N: w in real-time mode (promoted)\n", [("w", "real-time", "promoted")]),
    (["w", "--now", "--no-wait", "--mode", "balanced", "--deadline=2030-01-01T09:00"], 0,
     "N\n", "run N: w in balanced mode (explicit)\n", [("w", "balanced", "explicit")]),
    (["pinned", "--now", "--no-wait"], 0, "N\n", "run N: pinned in balanced mode (workflow)\n",
     [("pinned", "balanced", "workflow")]),
    # several workflows, and --count
    (["w", "pinned", "--now", "--no-wait"], 0, "N\nN\n",
     "run N: w in real-time mode (manual)\nrun N: pinned in balanced mode (workflow)\n",
     [("w", "real-time", "manual"), ("pinned", "balanced", "workflow")]),
    (["w", "--now", "--no-wait", "--count", "3", "--mode", "eco"], 0, "N\nN\nN\n",
     "runs N-N: w in eco mode (explicit)\n", [("w", "eco", "explicit")] * 3),
    (["pinned", "w", "--now", "--no-wait", "--count", "2", "--json"], 0, None,
     "runs N-N: pinned in balanced mode (workflow)\nruns N-N: w in real-time mode (manual)\n",
     [("pinned", "balanced", "workflow")] * 2 + [("w", "real-time", "manual")] * 2),
    # bad input: one line, exit 2, nothing written
    (["missing", "--now", "--no-wait"], 2, "",
     "error: unknown workflow 'missing' (see `easyflow workflow list`)\n", []),
    (["w", "missing", "--now", "--no-wait", "--count", "5"], 2, "",
     "error: unknown workflow 'missing' (see `easyflow workflow list`)\n", []),
    (["w", "--now", "--no-wait", "--deadline", "whenever"], 2, "", None, []),
    (["w", "--now", "--no-wait", "--bogus"], 2, "",
     "error: easyflow run: no option --bogus (see `easyflow run --help`)\n", []),
    (["w", "--now", "--no-wait", "--count", "0"], 2, "", None, []),
    (["w", "--now", "--no-wait", "--count", "1000001"], 2, "", None, []),
    (["w", "--no-wait", "--count", "2"], 2, "", "error: --count needs --now\n", []),
    (["w", "pinned", "--quote"], 2, "", "error: --quote takes one workflow\n", []),
]


@pytest.mark.e2e
def test_run_now_no_wait(daemon):
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
    # Longer than real-time's default timeout: the pools stay busy however slow the box.
    block = daemon.workflow_file("block", ["sleep", "600"], timeout="1h")
    daemon.cli("workflow", "add", str(block), str(daemon.workflow_file("w", ["true"])))
    daemon.add_workflow("pinned", ["true"], execution_mode="balanced", cost_priority="high")
    daemon.start()
    for mode in Mode:
        daemon.submit("block", "--mode", mode.value)
    daemon.wait_for_runs(lambda runs: [r["state"] for r in runs] == ["running"] * 3,
                         workflow="block", message="every pool to be busy")

    for args, code, stdout, stderr, written in QUEUED:
        case = " ".join(args)
        known = {r["id"] for r in daemon.peek_runs()}
        done = daemon.cli("run", *args, check=False)
        rows = [r for r in daemon.peek_runs() if r["id"] not in known]

        assert done.returncode == code, (case, done.stderr)
        assert done.stderr.count("\n") == max(1, len({w for w, *_ in written})), case
        if stderr is not None:
            assert ids_in(done.stderr) == stderr, case
        if stdout is not None:
            assert ids_in(done.stdout) == stdout, case
        assert [(r["workflow"], r["mode"], r["mode_reason"]) for r in rows] == written, case
        assert all(r["state"] == "queued" for r in rows), case
        assert all(r["followed"] == 0 for r in rows), case  # --no-wait: nobody waits for them
        if "--json" in args:
            printed = json.loads(done.stdout)
            records = printed if isinstance(printed, list) else [printed]
            if isinstance(printed, dict):  # one run: whether retries may follow it
                assert (printed.pop("max_attempts"), printed.pop("retry_backoff_s")) == (1, 0)
            assert records == [{key: row[key] for key in records[0]} for row in rows], case
        elif code == 0:
            assert done.stdout.split() == [str(r["id"]) for r in rows], case


@pytest.mark.e2e
def test_several_runs_are_waited_for(daemon):
    daemon.add_workflows(ok=["true"], bad=["false"])
    daemon.start()

    done = daemon.cli("run", "ok", "--now", "--count", "3", "--json")
    ended = json.loads(done.stdout)
    assert [r["state"] for r in ended] == ["succeeded"] * 3
    assert ids_in(done.stderr) == ("runs N-N: ok in real-time mode (manual)\n"
                                   + "run N succeeded in N.Ns\n" * 3)
    assert [r["followed"] for r in ended] == [True] * 3

    done = daemon.cli("run", "ok", "bad", "--now", check=False)
    assert (done.returncode, done.stdout) == (1, "")
    assert re.search(r"^run \d+ failed in [\d.]+s: ", done.stderr, re.MULTILINE), done.stderr
    assert [r["state"] for r in daemon.peek_runs()[-2:]] == ["succeeded", "failed"]


# ---------------------------------------------------------------------- several runs, no daemon


@pytest.fixture
def two_workflows(home, write):
    for name in ("a", "b"):
        path = write(f"{name}.toml", f'name = "{name}"\n[[steps]]\nrun = ["true"]\n')
        assert CliRunner().invoke(app, ["workflow", "add", str(path)]).exit_code == 0


def run_rows() -> list[dict]:
    from easyflow_cli.storage.store import Store

    with Store.open() as store:
        return [run.to_record() for run in store.queue.latest(limit=100)]


@pytest.mark.parametrize("args", [["a", "b", "--now"], ["a", "b", "--now", "--no-wait"],
                                  ["a", "--now", "--count", "2"]])
def test_several_runs_without_a_daemon_are_refused(two_workflows, args):
    result = CliRunner().invoke(app, ["run", *args])
    assert result.exit_code == 2
    assert result.output.startswith("error: several runs go to the daemon, and none is running")
    assert result.output.count("\n") == 1
    assert run_rows() == []


def test_a_daemon_that_stops_answering_leaves_the_runs_queued(two_workflows, monkeypatch):
    """Connected, but no answer to the wake-up: the runs stay queued for the daemon's next
    start, their ids are printed, and the exit code says something went wrong."""
    from easyflow_cli.runtime import client

    monkeypatch.setattr(client, "_open", lambda home, timeout: _Closed())
    monkeypatch.setattr(client, "exchange", lambda sock, request: None)
    result = CliRunner().invoke(app, ["run", "a", "b", "--now", "--no-wait"])
    rows = run_rows()
    assert result.exit_code == 1
    assert [r["state"] for r in rows] == ["queued", "queued"]
    ids = sorted(r["id"] for r in rows)
    assert result.stdout.split() == [str(i) for i in ids]
    assert f"not answering: runs {ids[0]}-{ids[1]} wait in the queue until it takes them" in (
        " ".join(result.stderr.split()))


class _Closed:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return None

    def close(self):
        return None
