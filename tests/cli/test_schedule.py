import json
from datetime import UTC, datetime, timedelta

from typer.testing import CliRunner

from easyflow_cli.cli.main import app

runner = CliRunner()


def invoke(*args):
    return runner.invoke(app, list(args))


def setup(home, write):
    path = write("w.toml", 'name = "w"\n[[steps]]\nrun = ["true"]\n')
    assert invoke("workflow", "add", str(path)).exit_code == 0


def test_add_list_next_pause_resume_remove(home, write):
    setup(home, write)
    result = invoke("schedule", "add", "w", "--cron", "0 2 * * *", "--timezone", "Europe/Berlin")
    assert result.exit_code == 0, result.output
    sid = int(result.stdout)
    assert invoke("schedule", "add", "w", "--every", "90m", "--mode", "balanced",
                  "--deadline-after", "1h").exit_code == 0
    listed = json.loads(invoke("schedule", "list", "--json").stdout)
    assert [(s["kind"], s["expr"], s["runs_as"]) for s in listed] == [
        ("cron", "0 2 * * *", "eco (schedule)"), ("every", "1h30m", "balanced (explicit)")]
    assert all(s["next_fire_at"] for s in listed)
    fires = json.loads(invoke("schedule", "next", str(sid), "--count", "3", "--json").stdout)
    assert len(fires) == 3
    assert all(f["fire_at"].endswith("00:00.000000Z") for f in fires)
    both = json.loads(invoke("schedule", "next", "w", "-n", "4", "--json").stdout)
    assert len(both) == 4 and {f["schedule_id"] for f in both} <= {sid, sid + 1}
    assert "schedule" in invoke("schedule", "next", "w").stdout

    assert invoke("schedule", "pause", str(sid)).exit_code == 0
    paused = json.loads(invoke("schedule", "list", "--json").stdout)[0]
    assert paused["paused"] is True and paused["next_fire_at"] is None
    assert json.loads(invoke("schedule", "next", str(sid), "--json").stdout) == []
    assert invoke("schedule", "resume", str(sid)).exit_code == 0
    assert json.loads(invoke("schedule", "list", "--json").stdout)[0]["next_fire_at"]
    assert invoke("schedule", "remove", str(sid)).exit_code == 0
    assert len(json.loads(invoke("schedule", "list", "--json").stdout)) == 1
    csv_lines = invoke("schedule", "list", "--csv").stdout.splitlines()
    assert csv_lines[0].startswith("id,workflow,kind,expr")


def test_bad_schedule_input_exit_2_and_nothing_written(home, write):
    setup(home, write)
    cases = [
        (["--cron", "61 * * * *"], "error: --cron: bad cron expression '61 * * * *': minute"),
        (["--every", "soon"], "error: --every: bad duration 'soon'"),
        (["--at", "tomorrow"], "error: --at:"),
        (["--at", "2020-01-01T09:00"], "error: --at: '2020-01-01T09:00' is in the past; give a"
                                       " time after now"),
        (["--at", "2020-01-01T09:00Z", "--timezone", "Europe/Berlin"], "is in the past"),
        (["--cron", "0 2 * * *", "--timezone", "Mars/Base"], "unknown timezone 'Mars/Base'"),
        ([], "error: give exactly one of --cron, --every, --at"),
        (["--cron", "* * * * *", "--every", "5m"], "exactly one"),
        (["--every", "5m", "--deadline-after", "x"], "error: --deadline-after: bad duration"),
    ]
    for args, message in cases:
        result = invoke("schedule", "add", "w", *args)
        assert result.exit_code == 2, args
        assert result.output.startswith("error: ") and message in result.output, result.output
        assert result.output.count("\n") == 1
    assert invoke("schedule", "add", "nope", "--every", "5m").exit_code == 2
    assert json.loads(invoke("schedule", "list", "--json").stdout) == []
    for args in (["remove", "9"], ["pause", "9"], ["resume", "9"], ["next", "9"],
                 ["next", "nope"]):
        assert invoke("schedule", *args).exit_code == 2, args


def test_at_a_moment_from_now_is_accepted(home, write):
    setup(home, write)
    soon = (datetime.now(UTC) + timedelta(minutes=1)).isoformat(timespec="seconds")
    result = invoke("schedule", "add", "w", "--at", soon)
    assert result.exit_code == 0, result.output
    assert len(json.loads(invoke("schedule", "next", "w", "--json").stdout)) == 1


def test_status_without_daemon(home, write):
    setup(home, write)
    invoke("schedule", "add", "w", "--every", "5m")
    result = invoke("status", "--json")
    assert result.exit_code == 1
    status = json.loads(result.stdout)
    assert status["pid"] is None and status["queue"] == {"real-time": 0, "balanced": 0, "eco": 0}
    assert [f["workflow"] for f in status["next_fires"]] == ["w"]
    text = invoke("status")
    assert text.exit_code == 1 and "not running" in text.stdout


def test_status_without_daemon_shows_no_next_time_in_the_past(home, write):
    from freezegun import freeze_time

    from easyflow_cli.cli.output import short_time

    setup(home, write)
    invoke("schedule", "add", "w", "--every", "5m")
    invoke("schedule", "add", "w", "--every", "1d")
    fires = {f["id"]: f["next_fire_at"] for f in json.loads(invoke("status", "--json").stdout)[
        "next_fires"]}
    later = datetime.now(UTC) + timedelta(hours=1)
    with freeze_time(later):
        text = invoke("status").stdout
    lines = [line.strip() for line in text.splitlines() if "next:" in line]
    assert lines[0] == (f"next: overdue since {short_time(fires[1])} (fires once, when the "
                        f"daemon starts)  schedule 1 (w)")
    assert lines[1].startswith("next: 20") and lines[1].endswith("schedule 2 (w)")


def test_cancel_queued_run_without_daemon(home, write):
    from easyflow_cli.core.model import Trigger
    from easyflow_cli.core.planning import QueuePolicy, plan_run
    from easyflow_cli.core.timeutil import utcnow
    from easyflow_cli.storage.store import Store

    setup(home, write)
    with Store.open(home) as store:
        spec = store.get_workflow("w")
        [run_id] = store.queue.enqueue([plan_run(spec, trigger=Trigger.SCHEDULE, now=utcnow(),
                                                 policy=QueuePolicy())])
    result = invoke("runs", "cancel", str(run_id))
    assert result.exit_code == 0 and "cancelled" in result.output
    again = invoke("runs", "cancel", str(run_id))
    assert again.exit_code == 2 and "already ended (cancelled)" in again.output


def test_set_changes_a_schedule_in_place_with_jitter(home, write):
    setup(home, write)
    sid = int(invoke("schedule", "add", "w", "--every", "1h", "--jitter", "5m").stdout)
    [listed] = json.loads(invoke("schedule", "list", "--json").stdout)
    assert (listed["jitter"], listed["jitter_s"]) == ("5m", 300.0)
    result = invoke("schedule", "set", str(sid), "--cron", "0 3 * * *", "--timezone", "UTC",
                    "--mode", "balanced", "--deadline-after", "1h", "--jitter", "10m")
    assert result.exit_code == 0, result.output
    assert "jitter 10m" in result.output
    [row] = json.loads(invoke("schedule", "list", "--json").stdout)
    assert (row["id"], row["kind"], row["expr"], row["runs_as"], row["jitter"]) == (
        sid, "cron", "0 3 * * *", "balanced (explicit)", "10m")
    fires = json.loads(invoke("schedule", "next", str(sid), "-n", "2", "--json").stdout)
    offsets = {f["fire_at"][11:] for f in fires}
    assert len(offsets) == 1 and not offsets.pop().startswith("03:00:00.000")
    assert all(f["fire_at"][11:13] == "03" for f in fires)
    assert invoke("schedule", "set", str(sid), "--every", "1h", "--jitter", "x").exit_code == 2
    assert invoke("schedule", "set", "999", "--every", "1h").exit_code == 2
    assert invoke("schedule", "set", str(sid)).exit_code == 2


def test_a_disabled_workflow_s_schedules_show_no_next_fire(home, write):
    setup(home, write)
    sid = invoke("schedule", "add", "w", "--every", "1h").stdout.strip()
    assert invoke("workflow", "disable", "w").exit_code == 0
    assert json.loads(invoke("schedule", "next", sid, "--json").stdout) == []
    assert json.loads(invoke("schedule", "list", "--json").stdout)[0]["next_fire_at"] is None
    assert invoke("workflow", "enable", "w").exit_code == 0
    assert len(json.loads(invoke("schedule", "next", "w", "--json").stdout)) == 5
