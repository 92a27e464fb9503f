"""Retries you can see and re-runs, with no daemon: `run --now` runs the retries here after their
backoff and says so; `runs retry` runs a finished run again; `runs show` lists the attempts;
every way a waited-for run ends has its exit code."""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime, timedelta

import pytest
import typer
from typer.testing import CliRunner

from easyflow_cli.cli import follow
from easyflow_cli.cli import run as run_cli
from easyflow_cli.cli.follow import follow_attempts, retry_notice
from easyflow_cli.cli.main import app
from easyflow_cli.cli.outcome import INTERRUPTED_EXIT, ended_line, exit_code_of
from easyflow_cli.core.model import (
    CostPriority,
    Mode,
    ModeReason,
    PoolName,
    Run,
    RunState,
    Trigger,
)
from easyflow_cli.runtime import foreground
from easyflow_cli.storage.store import Store

runner = CliRunner()
NOW = datetime(2026, 11, 2, 8, 0, tzinfo=UTC)
# Fails with exit 3 until its third attempt (the attempt count kept in a file beside it).
FLAKY = ('[[steps]]\nshell = true\nrun = "n=$(($(cat count 2>/dev/null || echo 0) + 1)); '
         'echo $n > count; echo attempt $n; [ $n -ge {succeeds_at} ] || exit 3"\n')


def invoke(*args: str):
    return runner.invoke(app, list(args))


@pytest.fixture
def flaky(home, write):
    """`add(succeeds_at)`: the flaky workflow, retried twice 50 ms apart."""
    def add(succeeds_at: int) -> None:
        path = write("flaky.toml", 'name = "flaky"\nretries = 2\nretry_backoff = "50ms"\n'
                     + FLAKY.format(succeeds_at=succeeds_at))
        (path.parent / "count").unlink(missing_ok=True)
        assert invoke("workflow", "add", str(path)).exit_code == 0
    return add


def runs(home) -> list[Run]:
    with Store.open(home) as store:
        return list(reversed(store.queue.latest()))


def test_foreground_retries_after_the_backoff_and_exits_with_the_last_attempt(home, flaky):
    flaky(succeeds_at=3)
    result = invoke("run", "flaky", "--now")
    assert result.exit_code == 0, result.output
    assert "run 1: flaky in real-time mode (manual); if it fails, up to 2 retries follow" in (
        result.stderr)
    assert "attempt 1 failed (exit 3); retrying in 50ms as run 2 (attempt 2 of 3)\n" in (
        result.stderr)
    assert "attempt 2 failed (exit 3); retrying in 50ms as run 3 (attempt 3 of 3)\n" in (
        result.stderr)
    assert result.stderr.rstrip().splitlines()[-1].startswith("run 3 (attempt 3) succeeded in ")
    assert [line for line in result.stdout.splitlines() if line.startswith("attempt")] == [
        "attempt 1", "attempt 2", "attempt 3"]
    first, second, third = runs(home)
    assert [(r.trigger, r.attempt, r.retry_of, r.state) for r in (first, second, third)] == [
        (Trigger.MANUAL, 1, None, RunState.FAILED), (Trigger.RETRY, 2, 1, RunState.FAILED),
        (Trigger.RETRY, 3, 2, RunState.SUCCEEDED)]
    assert second.started_at - first.finished_at >= timedelta(milliseconds=50)  # slept here
    assert {r.pool.value for r in (first, second, third)} == {"foreground"}


def test_the_last_failed_attempt_gives_exit_1_and_json_its_record(home, flaky):
    flaky(succeeds_at=9)
    result = invoke("run", "flaky", "--now", "--json")
    assert result.exit_code == 1
    record = json.loads(result.stdout)
    assert (record["id"], record["attempt"], record["state"], record["exit_code"]) == (
        3, 3, "failed", 3)
    assert result.stderr.count("; retrying") == 2  # none after the last attempt


def test_a_retry_stopped_in_its_backoff_is_cancelled_and_exit_1(home, flaky, monkeypatch):
    flaky(succeeds_at=3)
    monkeypatch.setattr(foreground, "_sleep_until", lambda moment, stop: False)  # Ctrl-C
    result = invoke("run", "flaky", "--now")
    assert result.exit_code == 1
    assert [(r.id, r.state) for r in runs(home)] == [(1, RunState.FAILED),
                                                     (2, RunState.CANCELLED)]
    assert "run 2 (attempt 2) cancelled in 0.00s: cancelled by user" in result.stderr


def test_the_backoff_sleep_ends_at_its_time_or_when_stopped():
    stop = foreground._StopFlag()
    assert foreground._sleep_until(None, stop) is True
    assert foreground._sleep_until(NOW, stop) is True  # long past
    stop.stopped = True
    assert foreground._sleep_until(datetime.now(UTC) + timedelta(hours=1), stop) is False


def test_runs_show_lists_the_attempt_chain(home, flaky):
    flaky(succeeds_at=2)
    invoke("run", "flaky", "--now")
    shown = json.loads(invoke("runs", "show", "1", "--json").stdout)
    assert [(a["id"], a["attempt"], a["state"], a["exit_code"]) for a in shown["attempts"]] == [
        (1, 1, "failed", 3), (2, 2, "succeeded", 0)]
    table = invoke("runs", "show", "2").stdout
    assert "attempts" in table and "run 1 failed (exit 3) → run 2 succeeded" in table
    assert "attempts" not in invoke("runs", "show", "2", "--json").stdout.split('"log_path"')[0]


def test_runs_retry_runs_a_finished_run_again_linked_to_it(home, flaky):
    flaky(succeeds_at=1)
    assert invoke("run", "flaky", "--now", "--mode", "eco").exit_code == 0
    result = invoke("runs", "retry", "1", "--json")
    assert result.exit_code == 0, result.output
    record = json.loads(result.stdout)
    assert (record["id"], record["trigger"], record["rerun_of"], record["attempt"]) == (
        2, "manual", 1, 1)
    assert record["mode"] == "real-time"  # planned anew, as `run --now` plans it
    assert "run 2: flaky in real-time mode (manual), re-running run 1" in result.stderr
    again = json.loads(invoke("runs", "retry", "2", "--mode", "balanced", "--json").stdout)
    assert (again["rerun_of"], again["mode"], again["mode_reason"]) == (2, "balanced",
                                                                        "explicit")
    assert '"rerun_of": 1' in invoke("runs", "show", "2", "--json").stdout


def test_runs_retry_refuses_an_unknown_or_unfinished_run(home, flaky):
    flaky(succeeds_at=1)
    unknown = invoke("runs", "retry", "42")
    assert (unknown.exit_code, unknown.stderr) == (
        2, "error: unknown run 42 (see `easyflow runs list`)\n")
    with Store.open(home) as store:
        from easyflow_cli.core.planning import PlannedRun

        store.queue.enqueue([PlannedRun("flaky", Trigger.MANUAL, Mode.ECO, ModeReason.MANUAL,
                                        CostPriority.NORMAL, None, NOW)])
    queued = invoke("runs", "retry", "1")
    assert queued.exit_code == 2
    assert queued.stderr == ("error: run 1 has not ended (queued): wait for it, or cancel it "
                             "first (`easyflow runs cancel 1`)\n")
    assert len(runs(home)) == 1  # nothing written


def test_logs_follow_of_an_ended_run_exits_by_its_outcome(home, flaky):
    flaky(succeeds_at=2)
    invoke("run", "flaky", "--now")
    failed = invoke("logs", "-f", "1")
    assert failed.exit_code == 1
    assert failed.stdout.splitlines()[1:] == ["attempt 1",
                                              "[easyflow] step 'step-1' exited with code 3"]
    assert "run 1 is retried as run 2: easyflow logs -f 2" in failed.stderr
    succeeded = invoke("logs", "--follow", "2", "--tail", "1")
    assert (succeeded.exit_code, succeeded.stdout) == (0, "attempt 2\n")
    assert invoke("logs", "2", "-n", "1").stdout == "attempt 2\n"
    assert invoke("logs", "-f", "7").exit_code == 2


def run_record(state: RunState, attempt: int = 1, **fields) -> Run:
    return Run(11, "flaky", Trigger.RETRY, Mode.REAL_TIME, ModeReason.MANUAL,
               CostPriority.NORMAL, None, state, NOW, attempt=attempt, **fields)


@pytest.mark.parametrize("state, code", [
    (RunState.SUCCEEDED, 0), (RunState.FAILED, 1), (RunState.TIMED_OUT, 1),
    (RunState.CANCELLED, 1)])
def test_the_exit_code_rule(state: RunState, code: int):
    assert exit_code_of(run_record(state)) == code


def test_the_ended_line_names_the_attempt_and_escapes_the_error():
    run = run_record(RunState.FAILED, 3, duration_s=0.5, error="step 'x' [bold]exited 3")
    assert ended_line(run) == ("run 11 (attempt 3) [red]failed[/red] in 0.50s: "
                               "step 'x' \\[bold]exited 3")


def test_retry_notice_says_the_backoff_and_the_attempt():
    ended = run_record(RunState.TIMED_OUT, 1, exit_code=143, finished_at=NOW)
    retry = run_record(RunState.QUEUED, 2, not_before=NOW + timedelta(seconds=30))
    assert retry_notice(ended, retry, 3) == (
        "attempt 1 timed out (exit 143); retrying in 30s as run 11 (attempt 2 of 3)")
    assert retry_notice(ended, run_record(RunState.QUEUED, 2), None) == (
        "attempt 1 timed out (exit 143); retrying now as run 11 (attempt 2)")


def test_ctrl_c_stops_following_not_the_run(store, monkeypatch, capsys):
    def interrupted(store, run_id, echo):
        raise KeyboardInterrupt
    monkeypatch.setattr(follow, "follow_run", interrupted)
    with pytest.raises(typer.Exit) as stopped:
        follow_attempts(store, 5, None)  # type: ignore[arg-type]
    assert stopped.value.exit_code == INTERRUPTED_EXIT == 130
    assert capsys.readouterr().err == (
        "stopped following run 5; it goes on (easyflow logs -f 5)\n")


def test_a_retry_a_daemon_took_during_the_backoff_is_followed_there(home, flaky, monkeypatch):
    flaky(succeeds_at=3)

    def daemon_takes_it(moment, stop) -> bool:
        with Store.open(home) as store:
            [retry] = [r for r in store.queue.latest() if r.state is RunState.QUEUED]
            store.queue.claim_ids([retry.id], now=NOW, pool=PoolName.REAL_TIME, worker="daemon")
        return True

    followed: list[int] = []

    def follow_here(store, run_id, as_json):
        followed.append(run_id)
        return store.queue.get(run_id)

    monkeypatch.setattr(foreground, "_sleep_until", daemon_takes_it)
    monkeypatch.setattr(run_cli, "follow_here", follow_here)
    result = invoke("run", "flaky", "--now")
    assert followed == [2]
    assert "run 2 was taken by another runner: following it there" in result.stderr
    assert [(r.id, r.state, r.worker) for r in runs(home)] == [
        (1, RunState.FAILED, f"cli:{os.getpid()}"),
        (2, RunState.RUNNING, "daemon")]  # not run twice
