"""`workflow show` prints a workflow's learned durations, with their basis and accuracy; quotes
use them once there are enough runs."""

import json

from typer.testing import CliRunner

from easyflow_cli.cli.main import app
from easyflow_cli.storage.store import Store

runner = CliRunner()


def invoke(*args):
    result = runner.invoke(app, list(args))
    assert result.exit_code == 0, result.output
    return result


def succeeded(home, mode, durations, start_minute=0):
    """Successful runs of `w` in `mode`, a minute apart, oldest first."""
    with Store.open(home) as store, store.write() as conn:
        for offset, duration in enumerate(durations):
            at = f"2026-11-25T10:{start_minute + offset:02d}:00.000000Z"
            conn.execute(
                "INSERT INTO runs (workflow, trigger, mode, mode_reason, cost_priority,"
                " priority_rank, state, enqueued_at, started_at, finished_at, duration_s,"
                " cpu_user_s, cpu_system_s, queue_wait_s) VALUES ('w', 'manual', ?, 'explicit',"
                " 'normal', 1, 'succeeded', ?, ?, ?, ?, ?, 0, 0)",
                (mode, at, at, at, duration, duration / 2))


def test_show_says_when_there_is_too_little_history(home, write):
    invoke("workflow", "add", str(write("w.toml", 'name = "w"\n[[steps]]\nrun = ["true"]\n')))
    assert "no successful run yet" in invoke("workflow", "show", "w").stdout
    succeeded(home, "real-time", [10.0, 20.0, 30.0])
    text = invoke("workflow", "show", "w").stdout
    assert "Fewer than 5 successful runs" in text and "real-time" in text
    learned = json.loads(invoke("workflow", "show", "w", "--json").stdout)["learned"]
    assert (learned["runs"], learned["enough"], learned["min_runs"]) == (3, False, 5)
    assert learned["error_s"] is None


def test_show_gives_the_figures_their_basis_and_accuracy_per_mode(home, write):
    invoke("workflow", "add", str(write("w.toml", 'name = "w"\n[[steps]]\nrun = ["true"]\n')))
    succeeded(home, "real-time", [60.0] * 6)
    succeeded(home, "eco", [90.0] * 3 + [120.0] * 3, start_minute=10)
    learned = json.loads(invoke("workflow", "show", "w", "--json").stdout)["learned"]
    assert (learned["runs"], learned["enough"]) == (12, True)
    assert (learned["oldest"], learned["newest"]) == ("2026-11-25T10:00:00.000000Z",
                                                      "2026-11-25T10:15:00.000000Z")
    assert learned["duration_s"] == {"p50": 120.0, "p90": 120.0}
    assert learned["cpu_s"] == {"p50": 60.0, "p90": 60.0} and learned["energy_j"] is None
    assert learned["error_s"] == 30.0
    eco = learned["by_mode"]["eco"]
    assert (eco["runs"], eco["enough"], eco["duration_s"]["p50"]) == (6, True, 120.0)
    assert learned["by_mode"]["real-time"]["error_s"] == 0.0
    assert set(learned["by_mode"]) == {"real-time", "eco"}
    text = invoke("workflow", "show", "w").stdout
    assert "Learned durations" in text and "any" in text and "eco" in text
    assert "Fewer than" not in text


def test_quotes_use_the_learned_durations(home, write):
    invoke("workflow", "add", str(write("w.toml", 'name = "w"\ntimeout = "1h"\n'
                                                  '[[steps]]\nrun = ["true"]\n')))
    succeeded(home, "eco", [90.0] * 5 + [120.0] * 3)
    quotes = json.loads(invoke("run", "w", "--quote", "--json").stdout)["quotes"]
    by_mode = {q["mode"]: q for q in quotes}
    assert by_mode["eco"]["duration_s"] == 120.0
    assert by_mode["eco"]["basis"].startswith("p50 learned from 8 eco runs, typically off by")
    assert by_mode["real-time"]["basis"].startswith("p50 learned from 8 runs")
