"""Hostile input: malformed workflow files and CLI arguments.

Every case must exit 2 with one line on stderr saying what is wrong (for a file: the file, the
line where known, and the field), never a traceback, and leave the database as it was. The
database is seeded with a workflow, a schedule and a finished run first, so "unchanged" means
something; one seeded state directory serves the whole module because nothing may change it.
"""

from __future__ import annotations

import hashlib
import sqlite3
import subprocess
from pathlib import Path

import pytest
import typer.main
import typer.testing
from typer.testing import CliRunner

from easyflow_cli.cli.main import app
from tests.conftest import easyflow_command, subprocess_env

HOSTILE = Path(__file__).resolve().parent.parent / "hostile"
HOSTILE_FILES = sorted(HOSTILE.glob("*.toml"))

SEED_WORKFLOW = """\
name = "seed"
description = "a valid workflow, so that an unchanged database means something"

[[steps]]
name = "ok"
run = ["true"]

[[schedules]]
cron = "0 2 * * *"
timezone = "UTC"
"""

# file name -> (line the error names, or None where no line can be known; what it must name).
EXPECTED = {
    "allow-overlap-string": (3, "allow_overlap: must be true or false"),
    "at-invalid-date": (8, "schedules[0].at: bad time"),
    "at-month-13": (8, "schedules[0].at: bad time"),
    "at-out-of-range": (8, "schedules[0].at: bad time"),
    "bare-word-value": (3, "TOML syntax error"),
    "bom-prefix": (1, "TOML syntax error"),
    "continue-on-error-string": (6, "steps[0].continue_on_error: must be true or false"),
    "control-char-key": (None, r"\x1b[2J\nerror: fake: unknown key"),
    "cost-priority-bogus": (3, "cost_priority: must be one of"),
    "cron-minute-out-of-range": (8, "schedules[0].cron: bad cron expression"),
    "cron-never-matches": (8, "schedules[0].cron: bad cron expression"),
    "cron-not-string": (8, "schedules[0].cron: must be a string"),
    "cron-six-fields": (8, "schedules[0].cron: bad cron expression"),
    "cron-three-fields": (8, "schedules[0].cron: bad cron expression"),
    "cron-unknown-shortcut": (8, "schedules[0].cron: bad cron expression"),
    "cwd-not-string": (6, "steps[0].cwd: must be a string"),
    "deadline-after-int": (3, "deadline_after: must be a string"),
    "deadline-date-only": (3, "deadline: must be an ISO-8601 date-time"),
    "deadline-garbage": (3, "deadline: must be an ISO-8601 time"),
    "deadline-out-of-range": (3, "deadline: '0001-01-01T00:00:00+01:00' is out of range"),
    "deeply-nested": (None, "nested too deeply"),
    "env-file-not-string": (3, "env_file: must be a string"),
    "max-concurrent-zero": (3, "max_concurrent: must be a whole number from 1 to"),
    "schedule-jitter-garbage": (9, "schedules[0].jitter: bad duration"),
    "step-env-credential-traversal": (6, "steps[0].env.T.credential: '../../etc/shadow' is not"),
    "description-not-string": (3, "description: must be a string"),
    "duplicate-key": (3, "TOML syntax error"),
    "duplicate-step-key": (6, "TOML syntax error"),
    "duration-huge": (3, "timeout: bad duration"),
    "duration-infinite": (3, "retry_backoff: bad duration"),
    "duration-long-garbage": (3, "timeout: bad duration"),
    "duration-negative": (3, "timeout: bad duration"),
    "duration-sub-millisecond": (3, "retry_backoff: bad duration"),
    "duration-words": (3, "timeout: bad duration"),
    "duration-zero": (3, "timeout: bad duration"),
    "empty": (None, "holds no workflow"),
    "every-infinite": (8, "schedules[0].every: bad duration"),
    "every-zero": (8, "schedules[0].every: bad duration"),
    "execution-mode-wrong-case": (3, "execution_mode: must be one of"),
    "huge-string": (2, "name: is 3000000 characters long"),
    "integer-too-many-digits": (None, "too many digits"),
    "missing-value": (2, "TOML syntax error"),
    "name-empty": (2, "name: must not be empty"),
    "name-int": (2, "name: must be a string"),
    "name-missing": (None, "name: is required"),
    "name-path-traversal": (2, "name: '../../etc/passwd' may only use"),
    "name-trailing-newline": (2, r"name: 'nightly\n' may only use"),
    "name-unicode": (2, "name: 'wörkflow' may only use"),
    "name-very-long": (2, "name: is 10000 characters long"),
    "name-with-space": (2, "name: 'nightly report' may only use"),
    "not-utf8": (None, "is not UTF-8 text"),
    "nul-byte": (2, "TOML syntax error"),
    "only-comments": (None, "holds no workflow"),
    "retries-bool": (3, "retries: must be a whole number"),
    "retries-float": (3, "retries: must be a whole number"),
    "retries-inf": (3, "retries: must be a whole number"),
    "retries-negative": (3, "retries: must be a whole number"),
    "schedule-mode-bogus": (9, "schedules[0].mode: must be one of"),
    "schedule-unknown-key": (9, "schedules[0].timezon: unknown key"),
    "schedules-both-cron-and-every": (7, "schedules[0]: needs exactly one of"),
    "schedules-no-kind": (7, "schedules[0]: needs exactly one of"),
    "schedules-not-array": (3, "schedules: must be an array of tables"),
    "schedules-table-instead-of-array": (7, "schedules: must be an array of tables"),
    "shell-true-with-list-of-ints": (5, "steps[0].run: with shell = true"),
    "step-cwd-nul": (6, "steps[0].cwd: must not contain a NUL"),
    "step-duplicate-name": (9, "steps[1].name: duplicate step name"),
    "step-env-bad-name": (6, "steps[0].env.1BAD: is not a valid environment variable name"),
    "step-env-int-value": (6, "steps[0].env.A: must be a string"),
    "step-env-name-newline": (6, r"steps[0].env.A\n: is not a valid environment variable"),
    "step-env-nested-table": (6, "steps[0].env.A: must be a string"),
    "step-env-not-table": (6, "steps[0].env: must be a table"),
    "step-env-value-nul": (6, "steps[0].env.A: must not contain a NUL"),
    "step-not-table": (3, "steps[0]: must be a table"),
    "step-run-blank-string": (5, "steps[0].run: must name a program"),
    "step-run-empty-list": (5, "steps[0].run: must name a program"),
    "step-run-int": (5, "steps[0].run: must be an argv list or a string"),
    "step-run-list-of-ints": (5, "steps[0].run: must be a list of strings"),
    "step-run-missing": (4, "steps[0].run: is required"),
    "step-run-nested-arrays": (5, "steps[0].run: must be a list of strings"),
    "step-run-nul": (5, "steps[0].run: must not contain a NUL"),
    "step-run-unbalanced-quote": (5, "steps[0].run: cannot be split"),
    "step-shell-not-bool": (6, "steps[0].shell: must be true or false"),
    "step-timeout-garbage": (6, "steps[0].timeout: bad duration 'soon'"),
    "step-unknown-key": (6, "steps[0].continue_on_eror: unknown key"),
    "steps-dotted-key": (3, "steps: must be an array of tables"),
    "steps-empty-array": (3, "steps: at least one [[steps]] is required"),
    "steps-missing": (None, "steps: at least one [[steps]] is required"),
    "steps-not-array": (3, "steps: must be an array of tables"),
    "steps-table-instead-of-array": (4, "steps: must be an array of tables"),
    "surrogate-escape": (3, "TOML syntax error"),
    "timezone-directory": (9, "schedules[0].timezone: unknown timezone 'Europe'"),
    "timezone-path-traversal": (9, "schedules[0].timezone: unknown timezone"),
    "timezone-too-long": (9, "schedules[0].timezone: unknown timezone"),
    "timezone-unknown": (9, "schedules[0].timezone: unknown timezone"),
    "truncated-mid-key": (5, "TOML syntax error"),
    "unclosed-array": (5, "TOML syntax error"),
    "unclosed-string": (2, "TOML syntax error"),
    "unclosed-table-header": (4, "TOML syntax error"),
    "unknown-top-level-key": (3, "descripton: unknown key (did you mean 'description'?)"),
    "unknown-top-level-table": (4, "metadata: unknown key"),
}

# Also through the installed command, where a real process prints and exits.
THROUGH_SUBPROCESS = ("not-utf8", "deeply-nested", "control-char-key")

HUGE_INT = "9" * 30
LONG_TEXT = "x" * 100_000

# (arguments, what the one error line must mention). "seed" exists, as do schedule 1 and run 1.
CLI_CASES = [
    # run
    (["run", "nosuch", "--now"], "unknown workflow 'nosuch'"),
    (["run", "../../etc/passwd", "--now"], "unknown workflow"),
    (["run", "seed\0", "--now"], r"unknown workflow 'seed\x00'"),
    (["run", LONG_TEXT, "--now"], "unknown workflow"),
    (["run", "seed"], "--now"),
    (["run"], "Missing argument"),
    (["run", "seed", "--now", "--bogus"], "No such option: --bogus"),
    (["run", "seed", "--now", "--mode", "bogus"], "--mode"),
    (["run", "seed", "--now", "--deadline"], "--deadline"),
    (["run", "seed", "--now", "--deadline", "garbage"], "--deadline"),
    (["run", "seed", "--now", "--deadline", ""], "--deadline"),
    (["run", "seed", "--now", "--deadline", "0s"], "--deadline"),
    (["run", "seed", "--now", "--deadline", "-5m"], "--deadline"),
    (["run", "seed", "--now", "--deadline", "1e999s"], "--deadline"),
    (["run", "seed", "--now", "--deadline", f"{HUGE_INT}d"], "--deadline"),
    (["run", "seed", "--now", "--deadline", "9999-12-31T23:59:59-01:00"], "--deadline"),
    (["run", "seed", "--now", "--deadline", "0001-01-01T00:00:00+01:00"], "--deadline"),
    (["run", "seed", "--now", "--deadline", "2026-02-30T09:00"], "--deadline"),
    (["run", "seed", "--now", "--deadline", "30m\0"], "--deadline"),
    (["run", "seed", "--now", "--deadline", LONG_TEXT], "--deadline"),
    (["run", "seed", "--now", "--deadline", "30m; touch /tmp/easyflow-pwned"], "--deadline"),
    (["run", "seed; touch /tmp/easyflow-pwned", "--now"], "unknown workflow"),
    (["run", "nosuch", "--quote"], "unknown workflow 'nosuch'"),
    # schedule add
    (["schedule", "add", "nosuch", "--every", "1h"], "unknown workflow 'nosuch'"),
    (["schedule", "add", "seed"], "exactly one of"),
    (["schedule", "add", "seed", "--cron", "0 2 * * *", "--every", "1h"], "exactly one of"),
    (["schedule", "add", "seed", "--cron", "61 * * * *"], "--cron"),
    (["schedule", "add", "seed", "--cron", ""], "--cron"),
    (["schedule", "add", "seed", "--cron", "* * * * * * *"], "--cron"),
    (["schedule", "add", "seed", "--cron", "*/0 * * * *"], "--cron"),
    (["schedule", "add", "seed", "--cron", "0 0 31 2 *"], "--cron"),
    (["schedule", "add", "seed", "--cron", "@fortnightly"], "--cron"),
    (["schedule", "add", "seed", "--cron", f"{HUGE_INT} * * * *"], "--cron"),
    (["schedule", "add", "seed", "--cron", f"1-{HUGE_INT} * * * *"], "--cron"),
    (["schedule", "add", "seed", "--cron", "* * * * 8"], "--cron"),
    (["schedule", "add", "seed", "--cron", "* * * * mon-"], "--cron"),
    (["schedule", "add", "seed", "--cron", "* * * * */0"], "--cron"),
    (["schedule", "add", "seed", "--cron", "0 2 * * *\0"], "--cron"),
    (["schedule", "add", "seed", "--cron", "0 2 * * *; touch /tmp/easyflow-pwned"], "--cron"),
    (["schedule", "add", "seed", "--every", "0s"], "--every"),
    (["schedule", "add", "seed", "--every", "-5m"], "--every"),
    (["schedule", "add", "seed", "--every", "1e999s"], "--every"),
    (["schedule", "add", "seed", "--every", f"{HUGE_INT}d"], "--every"),
    (["schedule", "add", "seed", "--every", "0.0001ms"], "--every"),
    (["schedule", "add", "seed", "--every", "inf"], "--every"),
    (["schedule", "add", "seed", "--every", "nan"], "--every"),
    (["schedule", "add", "seed", "--every", "5"], "--every"),
    (["schedule", "add", "seed", "--every", ""], "--every"),
    (["schedule", "add", "seed", "--every", "1h\0"], "--every"),
    (["schedule", "add", "seed", "--at", "garbage"], "--at"),
    (["schedule", "add", "seed", "--at", "2026-02-30T09:00"], "--at"),
    (["schedule", "add", "seed", "--at", "9999-12-31T23:59:59-01:00"], "--at"),
    (["schedule", "add", "seed", "--at", "0001-01-01T00:00:00+01:00"], "--at"),
    (["schedule", "add", "seed", "--at", ""], "--at"),
    (["schedule", "add", "seed", "--at", "2001-01-01T00:00:00Z"], "--at"),
    (["schedule", "add", "seed", "--cron", "0 2 * * *", "--timezone", "../../etc/passwd"],
     "unknown timezone"),
    (["schedule", "add", "seed", "--cron", "0 2 * * *", "--timezone", "/etc/localtime"],
     "unknown timezone"),
    (["schedule", "add", "seed", "--cron", "0 2 * * *", "--timezone", "Europe"],
     "unknown timezone"),
    (["schedule", "add", "seed", "--cron", "0 2 * * *", "--timezone", "Z" * 5000],
     "unknown timezone"),
    (["schedule", "add", "seed", "--cron", "0 2 * * *", "--timezone", "Mars/Olympus_Mons"],
     "unknown timezone"),
    (["schedule", "add", "seed", "--cron", "0 2 * * *", "--timezone", ""], "unknown timezone"),
    (["schedule", "add", "seed", "--cron", "0 2 * * *", "--timezone", "UTC\0"],
     "unknown timezone"),
    (["schedule", "add", "seed", "--every", "1h", "--mode", "bogus"], "--mode"),
    (["schedule", "add", "seed", "--every", "1h", "--deadline-after", "garbage"],
     "--deadline-after"),
    (["schedule", "add", "seed", "--every", "1h", "--deadline-after", "-5m"],
     "--deadline-after"),
    (["schedule", "add", "seed", "--every", "1h", "--deadline-after", "1e999s"],
     "--deadline-after"),
    # schedule next / remove / pause / resume
    (["schedule", "next", "99999"], "unknown schedule 99999"),
    (["schedule", "next", HUGE_INT], "unknown schedule"),
    (["schedule", "next", "nosuch"], "unknown workflow 'nosuch'"),
    (["schedule", "next", "-1"], "No such option: -1"),
    (["schedule", "next", ""], "unknown workflow ''"),
    (["schedule", "next", "\0"], r"unknown workflow '\x00'"),
    (["schedule", "next", "１"], "unknown workflow '１'"),
    (["schedule", "next", "²"], "unknown workflow '²'"),
    (["schedule", "next", "1", "--count", "0"], "--count"),
    (["schedule", "next", "1", "--count", "-1"], "--count"),
    (["schedule", "next", "1", "--count", "100000"], "--count"),
    (["schedule", "next", "1", "--count", HUGE_INT], "--count"),
    *[([ "schedule", verb, value], expected)
      for verb in ("remove", "pause", "resume")
      for value, expected in (("99999", "unknown schedule 99999"), ("0", "unknown schedule 0"),
                              ("-1", "No such option: -1"),
                              ("abc", "schedule id: 'abc' is not a whole number"),
                              (HUGE_INT, "unknown schedule"),
                              ("1.5", "schedule id: '1.5' is not a whole number"))],
    # runs list / show / cancel, logs
    (["runs", "list", "--limit", "-1"], "--limit"),
    (["runs", "list", "--limit", "0"], "--limit"),
    (["runs", "list", "--limit", "abc"], "--limit"),
    (["runs", "list", "--limit", HUGE_INT], "--limit"),
    (["runs", "list", "--limit", "1e3"], "--limit"),
    (["runs", "list", "--state", "bogus"], "--state"),
    (["runs", "list", "--state", "Queued"], "--state"),
    *[([*command, value], expected)
      for command in (["runs", "show"], ["runs", "cancel"], ["logs"])
      for value, expected in (("99999", "unknown run 99999"), ("0", "unknown run 0"),
                              ("-1", "No such option: -1"),
                              ("abc", "run id: 'abc' is not a whole number"),
                              (HUGE_INT, "unknown run"),
                              ("1.5", "run id: '1.5' is not a whole number"),
                              ("", "run id: '' is not a whole number"))],
    (["runs", "cancel", "1"], "run 1"),
    # workflow show / remove / export
    *[(["workflow", verb, value], "unknown workflow")
      for verb in ("show", "remove", "export")
      for value in ("nosuch", "../../etc/passwd", "seed\0", "", LONG_TEXT, "SEED")],
    (["workflow", "export", "seed", "-o", "/nonexistent-easyflow-dir/seed.toml"],
     "/nonexistent-easyflow-dir/seed.toml"),
    (["workflow", "export", "seed", "-o", "/"], "-o"),
    (["workflow", "add", "/nonexistent-easyflow-dir/wf.toml"], "no such file or directory"),
    (["workflow", "add"], "Missing argument"),
    # report
    *[(["report", kind, "--since", value], "--since")
      for kind in ("costs", "latency", "pools")
      for value in ("garbage", "-5m", "0s", "1e999s", f"{HUGE_INT}d", "9999-12-31T23:59:59-01:00",
                    "0001-01-01T00:00:00+01:00", "", "7d\0")],
    (["report", "costs", "--since", "1d", "--until", "7d"], "--since must be earlier"),
    (["report", "costs", "--until", "garbage"], "--until"),
    (["report", "costs", "--workflow", "nosuch"], "unknown workflow 'nosuch'"),
    # unknown commands and options
    (["bogus"], "No such command 'bogus'"),
    (["workflow", "bogus"], "No such command 'bogus'"),
    (["--bogus"], "No such option: --bogus"),
    (["status", "--bogus"], "No such option: --bogus"),
]


def _case_id(args: list[str]) -> str:
    text = " ".join(args).encode("unicode_escape").decode()
    return text if len(text) <= 60 else f"{text[:60]}...({len(text)})"


runner = CliRunner()


@pytest.fixture(scope="module", autouse=True)
def cli_built_once():
    """Typer turns the app into a Click command on every invoke (~25 ms, most of a case's
    time); the command is the same every time, so build it once for these few hundred cases."""
    command = typer.main.get_command(app)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(typer.testing, "_get_command", lambda _app: command)
        yield


def invoke(home: Path, *args: str):
    return runner.invoke(app, list(args), env={"EASYFLOW_HOME": str(home),
                                               "EASYFLOW_CONFIG": None})


@pytest.fixture(scope="module")
def seeded(tmp_path_factory) -> Path:
    """A state directory holding one workflow, its schedule and one finished run."""
    root = tmp_path_factory.mktemp("hostile")
    home = root / "home"
    seed = root / "seed.toml"
    seed.write_text(SEED_WORKFLOW)
    for args in (["workflow", "add", str(seed)], ["run", "seed", "--now"]):
        result = invoke(home, *args)
        assert result.exit_code == 0, result.output
    return home


def fingerprint(home: Path) -> str:
    """Everything the database holds, and the names and sizes of the run logs."""
    uri = f"file:{home / 'easyflow.db'}?mode=ro"
    with sqlite3.connect(uri, uri=True) as conn:
        dump = "\n".join(conn.iterdump())
        version = conn.execute("PRAGMA user_version").fetchone()[0]
    logs = sorted((p.name, p.stat().st_size) for p in (home / "logs").iterdir())
    return hashlib.sha256(f"{version}\n{dump}\n{logs}".encode()).hexdigest()


def assert_one_clear_line(stderr: str, *expected: str) -> str:
    assert "Traceback" not in stderr
    lines = stderr.splitlines()
    assert len(lines) == 1, stderr
    line = lines[0]
    assert line.startswith("error: "), line
    assert line.isprintable(), line
    for text in expected:
        assert text in line, (text, line)
    return line


@pytest.mark.parametrize("path", HOSTILE_FILES, ids=lambda p: p.stem)
def test_hostile_workflow_file_is_refused(seeded, path):
    line_number, names = EXPECTED[path.stem]
    before = fingerprint(seeded)
    result = invoke(seeded, "workflow", "add", str(path))
    assert result.exit_code == 2, result.output
    where = f"{path}:{line_number}: " if line_number else f"{path}: "
    assert_one_clear_line(result.stderr, f"error: {where}", names)
    assert len(result.stderr) < 400
    assert fingerprint(seeded) == before


def test_every_hostile_file_has_an_expectation():
    assert sorted(EXPECTED) == [p.stem for p in HOSTILE_FILES]
    assert len(HOSTILE_FILES) >= 90


def test_a_bad_file_among_good_ones_adds_nothing(seeded, tmp_path):
    good = tmp_path / "a-good.toml"
    good.write_text(SEED_WORKFLOW.replace('"seed"', '"fresh"'))
    bad = tmp_path / "b-bad.toml"
    bad.write_bytes((HOSTILE / "step-run-nul.toml").read_bytes())
    before = fingerprint(seeded)
    result = invoke(seeded, "workflow", "add", str(tmp_path))
    assert result.exit_code == 2
    assert_one_clear_line(result.stderr, f"{bad}:5: steps[0].run")
    assert fingerprint(seeded) == before


@pytest.mark.e2e
@pytest.mark.parametrize("stem", THROUGH_SUBPROCESS)
def test_hostile_file_through_the_installed_command(seeded, stem):
    path = HOSTILE / f"{stem}.toml"
    before = fingerprint(seeded)
    done = subprocess.run([*easyflow_command(), "workflow", "add", str(path)],
                          env=subprocess_env(seeded), capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 2, done.stderr
    assert done.stdout == ""
    assert_one_clear_line(done.stderr, str(path), EXPECTED[stem][1])
    assert fingerprint(seeded) == before


@pytest.mark.parametrize(("args", "expected"), CLI_CASES,
                         ids=[_case_id(args) for args, _ in CLI_CASES])
def test_hostile_cli_arguments_are_refused(seeded, args, expected):
    before = fingerprint(seeded)
    result = invoke(seeded, *args)
    assert result.exit_code == 2, (result.output, result.exception)
    line = assert_one_clear_line(result.stderr, expected)
    assert len(line) < 400
    assert fingerprint(seeded) == before
    assert not Path("/tmp/easyflow-pwned").exists()


@pytest.mark.e2e
@pytest.mark.parametrize("args", [
    ["run", "seed", "--now", "--deadline", "1e999s"],
    ["runs", "show", HUGE_INT],
    ["runs", "list", "--limit", "-1"],
], ids=_case_id)
def test_hostile_cli_arguments_through_the_installed_command(seeded, args):
    before = fingerprint(seeded)
    done = subprocess.run([*easyflow_command(), *args], env=subprocess_env(seeded),
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2, done.stderr
    assert_one_clear_line(done.stderr)
    assert fingerprint(seeded) == before


def test_the_corpus_is_large():
    assert len(CLI_CASES) >= 100
