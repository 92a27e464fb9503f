import json

from typer.testing import CliRunner

from easyflow_cli.cli.main import app

runner = CliRunner()


def invoke(*args):
    return runner.invoke(app, list(args))


def add(write, name, body):
    path = write(f"{name}.toml", f'name = "{name}"\n{body}')
    assert invoke("workflow", "add", str(path)).exit_code == 0


def test_run_now_real_time_manual(home, write):
    add(write, "hello", '[[steps]]\nrun = ["echo", "hello from step"]\n')
    result = invoke("run", "hello", "--now", "--json")
    assert result.exit_code == 0, result.output
    record = json.loads(result.stdout)
    assert (record["state"], record["mode"], record["mode_reason"], record["trigger"]) == (
        "succeeded", "real-time", "manual", "manual")
    assert record["exit_code"] == 0 and record["attempt"] == 1
    assert record["followed"] is True
    for key in ("id", "workflow", "cost_priority", "deadline", "enqueued_at", "started_at",
                "finished_at", "cpu_user_s", "cpu_system_s", "peak_rss_kb", "error"):
        assert key in record
    assert "hello from step" in result.stderr
    logs = invoke("logs", str(record["id"]))
    assert "hello from step" in logs.stdout


def test_run_streams_output_to_stdout_without_json(home, write):
    add(write, "hello", '[[steps]]\nrun = ["echo", "live line"]\n')
    result = invoke("run", "hello", "--now")
    assert result.exit_code == 0
    assert "live line" in result.stdout


def test_failed_run_exit_1(home, write):
    add(write, "bad", '[[steps]]\nrun = ["sh", "-c", "exit 4"]\n')
    result = invoke("run", "bad", "--now", "--json")
    assert result.exit_code == 1
    record = json.loads(result.stdout)
    assert (record["state"], record["exit_code"]) == ("failed", 4)


def test_mode_and_deadline_options(home, write):
    add(write, "w", '[[steps]]\nrun = ["true"]\n')
    record = json.loads(invoke("run", "w", "--now", "--mode", "eco", "--deadline", "2h",
                               "--json").stdout)
    assert (record["mode"], record["mode_reason"]) == ("eco", "explicit")
    assert record["deadline"] is not None and record["deadline_met"] is True
    record = json.loads(invoke("run", "w", "--now", "--deadline", "2030-01-01T00:00:00Z",
                               "--json").stdout)
    assert record["deadline"] == "2030-01-01T00:00:00.000000Z"


def test_bad_arguments_exit_2(home, write):
    add(write, "w", '[[steps]]\nrun = ["true"]\n')
    result = invoke("run", "w", "--now", "--deadline", "whenever")
    assert result.exit_code == 2
    assert "--deadline: 'whenever' is neither a duration" in result.output
    assert invoke("run", "w", "--now", "--mode", "turbo").exit_code == 2
    result = invoke("run", "w")
    assert result.exit_code == 2 and "--now" in result.output


def test_workflow_timeout_ends_timed_out(home, write):
    add(write, "slow", 'timeout = "1s"\n[[steps]]\nrun = ["sleep", "30"]\n')
    result = invoke("run", "slow", "--now", "--json")
    assert result.exit_code == 1
    assert json.loads(result.stdout)["state"] == "timed_out"


def test_quote_uses_history(home, write):
    add(write, "q", '[[steps]]\nrun = ["sleep", "0.3"]\n')
    fresh = json.loads(invoke("run", "q", "--quote", "--json").stdout)
    assert fresh["workflow"] == "q"
    assert [q["mode"] for q in fresh["quotes"]] == ["real-time", "balanced", "eco"]
    assert all(q["basis"] == "no history: default duration" for q in fresh["quotes"])
    for _ in range(2):
        assert invoke("run", "q", "--now").exit_code == 0
    quoted = json.loads(invoke("run", "q", "--quote", "--json").stdout)
    rt = quoted["quotes"][0]
    assert rt["basis"] == "median of 2 real-time runs"
    assert 0.3 <= rt["duration_s"] < 5
    assert set(rt) == {"mode", "start", "finish", "cost", "duration_s", "basis"}
    text = invoke("run", "q", "--quote").stdout
    assert text.startswith("Run now: $")
    assert "Run overnight: $" in text or "Run in eco mode: $" in text
    assert invoke("run", "nope", "--quote").exit_code == 2


def test_quote_counts_failed_runs_and_the_timeout(home, write):
    add(write, "flaky", 'retries = 1\ntimeout = "2s"\n[[steps]]\nrun = ["false"]\n')
    # Retried here in the foreground too: two failed runs, its two attempts.
    assert invoke("run", "flaky", "--now").exit_code == 1
    quoted = json.loads(invoke("run", "flaky", "--quote", "--json").stdout)
    rt = quoted["quotes"][0]
    # Every run failed, and each is retried once: two attempts paid for.
    assert rt["basis"] == "median of 2 real-time runs, 2 failed, 2 attempts with retries"
    add(write, "slow", 'timeout = "2s"\n[[steps]]\nrun = ["true"]\n')
    slow = json.loads(invoke("run", "slow", "--quote", "--json").stdout)["quotes"][0]
    assert slow["duration_s"] == 2.0  # the default minute is cut at the workflow's timeout
    assert slow["basis"] == "no history: default duration, cut at its 2s timeout"


def test_callable_step_runs_in_the_foreground(home, write, tmp_path):
    (tmp_path / "wf" / "ef_cli_calls.py").parent.mkdir(parents=True, exist_ok=True)
    (tmp_path / "wf" / "ef_cli_calls.py").write_text("def main(who):\n    print('hi', who)\n")
    add(write, "pycall", '[[steps]]\ncall = "ef_cli_calls:main"\nargs = ["there"]\n')
    result = invoke("run", "pycall", "--now", "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["state"] == "succeeded"
    assert "hi there" in result.stderr


def test_no_wait_records_that_nobody_followed_the_run(home, write):
    add(write, "w", '[[steps]]\nrun = ["true"]\n')
    record = json.loads(invoke("run", "w", "--now", "--no-wait", "--json").stdout)
    assert (record["state"], record["followed"]) == ("succeeded", False)
