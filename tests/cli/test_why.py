"""`easyflow why RUN_ID` as people and scripts read it."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from easyflow_cli.cli.main import app

runner = CliRunner()


def invoke(*args: str):
    return runner.invoke(app, list(args))


def test_why_a_run_ran_and_why_another_waits(home, write):
    path = write("w.toml", 'name = "w"\n[[steps]]\nrun = ["true"]\n')
    assert invoke("workflow", "add", str(path)).exit_code == 0
    ran = json.loads(invoke("run", "w", "--now", "--json").stdout)["id"]

    done = invoke("why", str(ran))
    assert done.exit_code == 0, done.output
    said = done.stdout.splitlines()
    assert said[0] == f"run {ran} (w) succeeded, real-time: run --now with no mode set runs " \
                      "real-time"
    assert said[1].startswith("  durations: 1 successful runs (of any mode), too few")
    assert said[2].startswith("  ran: started ")

    answer = json.loads(invoke("why", str(ran), "--json").stdout)
    assert (answer["run"], answer["followed"], answer["daemon_up"]) == (ran, True, None)


def test_why_an_unknown_run_is_bad_input(home):
    done = invoke("why", "42")
    assert (done.exit_code, done.stdout) == (2, "")
    assert "unknown run 42" in done.stderr


def test_why_a_queued_run_waits_with_no_daemon_up(home, store):
    from easyflow_cli.core.model import CostPriority, Mode, ModeReason, Trigger
    from easyflow_cli.core.planning import PlannedRun
    from easyflow_cli.core.timeutil import utcnow

    queued = store.queue.enqueue([PlannedRun("w", Trigger.SCHEDULE, Mode.ECO,
                                             ModeReason.SCHEDULE, CostPriority.NORMAL, None,
                                             utcnow())])[0]
    said = invoke("why", str(queued)).stdout.splitlines()
    assert said[0] == f"run {queued} (w) is queued, eco: a schedule fired it, and scheduled " \
                      "work runs eco"
    assert "  queue: ready, next in line (1 eco run queued)" in said
    assert "  promotion: none (no deadline)" in said
    assert said[-1] == "  daemon: not running: it waits in the queue until one starts"
    assert json.loads(invoke("why", str(queued), "--json").stdout)["daemon_up"] is False


def test_why_says_what_the_eco_planner_recorded(home, store):
    from datetime import timedelta

    from easyflow_cli.core.model import CostPriority, Mode, ModeReason, Trigger
    from easyflow_cli.core.planning import PlannedRun
    from easyflow_cli.core.timeutil import utcnow

    now = utcnow()
    planned = PlannedRun("w", Trigger.SCHEDULE, Mode.ECO, ModeReason.SCHEDULE,
                         CostPriority.NORMAL, None, now, now + timedelta(hours=3),
                         not_before_reason="cheapest window 03:00-04:00 UTC")
    queued = store.queue.enqueue([planned])[0]
    said = invoke("why", str(queued)).stdout.splitlines()
    assert said[1] == "  planned: cheapest window 03:00-04:00 UTC"
    assert said[2].startswith("  window: waits for ")
