"""`easyflow status` without a daemon: what the database tells, the runs running now included
(a terminal's foreground run is one), as a table, `--json` and `--csv`."""

import csv
import io
import json
from datetime import timedelta

from freezegun import freeze_time
from typer.testing import CliRunner

from easyflow_cli.cli.main import app
from easyflow_cli.core.timeutil import to_iso, utcnow
from easyflow_cli.storage.sqlite_queue import insert_runs

runner = CliRunner()
COLUMNS = ("workflow", "trigger", "mode", "mode_reason", "cost_priority", "priority_rank",
           "state", "enqueued_at", "claimed_at", "started_at", "pool")


def test_status_lists_the_runs_running_now_without_a_daemon(store):
    now = utcnow()
    started = to_iso(now - timedelta(minutes=2))
    insert_runs(store, COLUMNS, [
        ("backup", "manual", "eco", "manual", "normal", 1, "running", started, started, started,
         "foreground"),
        ("report", "manual", "balanced", "manual", "normal", 1, "succeeded", started, started,
         started, "balanced"),
    ])
    with freeze_time(now + timedelta(seconds=1)):
        as_json = runner.invoke(app, ["status", "--json"])
        as_csv = runner.invoke(app, ["status", "--csv"])
        table = runner.invoke(app, ["status"])
    assert as_json.exit_code == as_csv.exit_code == table.exit_code == 1  # not running
    [running] = json.loads(as_json.stdout)["running"]
    assert running == {"id": 1, "workflow": "backup", "mode": "eco", "pool": "foreground",
                       "started_at": started, "elapsed_s": 121.0}
    assert list(csv.DictReader(io.StringIO(as_csv.stdout))) == [
        {"id": "1", "workflow": "backup", "mode": "eco", "pool": "foreground",
         "started_at": started, "elapsed_s": "121.0"}]
    assert "daemon not running" in table.stdout
    [row] = [line for line in table.stdout.splitlines() if "backup" in line]
    assert "foreground" in row and "2m1s" in row


def test_status_says_when_nothing_runs(store):
    result = runner.invoke(app, ["status"])
    assert "running: none" in result.stdout
    assert runner.invoke(app, ["status", "--csv"]).stdout.splitlines() == [
        "id,workflow,mode,pool,started_at,elapsed_s"]
