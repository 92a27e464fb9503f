"""A real cluster on this box: PostgreSQL, Redis, `easyflow daemon` as the coordinator (and a
standby) and `easyflow worker` processes, each in a home of its own, driven by the real CLI.

Every step of the workflows here appends its run id to a file, so "run twice" is a repeated
line and "lost" is a run that never reaches an end state.
"""

from __future__ import annotations

import collections
import json
import os
import signal
import sys
from datetime import datetime, timedelta
from pathlib import Path

from tests.cluster_harness import ClusterHarness, finished
from tests.daemon_harness import wait_for
from tests.scrape import free_port, samples, scrape

pytest_plugins = ["tests.cluster_harness"]

LEASE_S = 2
DISPATCH_TIMEOUT_S = 3
CONFIG = f"""
[cluster]
lease = "{LEASE_S}s"
dispatch_timeout = "{DISPATCH_TIMEOUT_S}s"
"""
END_STATES = ("succeeded", "failed", "timed_out", "cancelled")


def marking(out: Path, seconds: float) -> list[str]:
    """A step that notes its run id in `out`, then sleeps."""
    return ["sh", "-c", f'echo "$EASYFLOW_RUN_ID" >> {out}; sleep {seconds}']


def marks(out: Path) -> collections.Counter:
    if not out.exists():
        return collections.Counter()
    return collections.Counter(int(line) for line in out.read_text().split())


def submit(cluster: ClusterHarness, name: str, count: int = 1, *args: str) -> list[int]:
    records = cluster.cli_json("run", name, "--now", "--no-wait", "--json",
                               *(["--count", str(count)] if count > 1 else []), *args)
    records = records if isinstance(records, list) else [records]
    return [record["id"] for record in records]


def all_ended(runs: list[dict]) -> bool:
    return bool(runs) and all(r["state"] in END_STATES for r in runs)


def assert_none_twice(out: Path) -> None:
    twice = {run_id: n for run_id, n in marks(out).items() if n > 1}
    assert not twice, f"runs executed more than once: {twice}"


def test_runs_spread_over_both_real_time_workers_and_end_as_on_one_box(cluster):
    cluster.write_config(CONFIG)
    out = cluster.root / "ran.txt"
    cluster.add_workflow("quick", marking(out, 0.3), execution_mode="real-time")
    cluster.start_coordinator()
    cluster.start_worker("real-time", "rt1")
    cluster.start_worker("real-time", "rt2")
    cluster.start_worker("eco", "eco1")

    ids = submit(cluster, "quick", 12)
    runs = cluster.wait_until(lambda rs: finished(rs, 12), message="12 runs to finish")

    assert [r["state"] for r in runs] == ["succeeded"] * 12
    assert {r["worker"] for r in runs} == {"rt1", "rt2"}
    assert all(r["pool"] == "real-time" and r["host"] for r in runs)
    assert marks(out) == collections.Counter(ids)
    shown = cluster.cli_json("runs", "show", str(ids[0]), "--json")
    assert shown["state"] == "succeeded" and shown["exit_code"] == 0


def test_kill_9_of_a_workers_main_process_loses_no_run_and_runs_none_twice(cluster):
    cluster.write_config(CONFIG)
    out = cluster.root / "ran.txt"
    cluster.add_workflow("slow", marking(out, 2), execution_mode="real-time", retries=1)
    cluster.start_coordinator()
    victim = cluster.start_worker("real-time", "rt1")
    cluster.start_worker("real-time", "rt2")

    submit(cluster, "slow", 4)
    cluster.wait_until(lambda rs: any(r["worker"] == "rt1" and r["started_at"] for r in rs),
                       message="rt1 to run something")
    victim.kill()

    runs = cluster.wait_until(all_ended, timeout=90, message="every run to end")
    assert_none_twice(out)
    assert all(r["state"] in ("succeeded", "failed") for r in runs)
    # Each of the 4 submissions succeeded, itself or as its retry.
    succeeded = {r["retry_of"] or r["id"] for r in runs if r["state"] == "succeeded"}
    assert len(succeeded) == 4, runs


def test_kill_9_of_the_process_running_a_run_settles_it_once(cluster):
    cluster.write_config(CONFIG)
    out = cluster.root / "ran.txt"
    cluster.add_workflow("slow", marking(out, 3), execution_mode="real-time")
    cluster.start_coordinator()
    worker = cluster.start_worker("real-time", "rt1")

    [run_id] = submit(cluster, "slow")
    running = cluster.wait_until(lambda rs: rs and rs[0]["pid"], message="the step to start")
    step_pid = running[0]["pid"]
    os.kill(worker.pool_process_of(step_pid), signal.SIGKILL)

    runs = cluster.wait_until(all_ended, timeout=60, message="the run to be settled")
    assert_none_twice(out)
    assert [r["id"] for r in runs] == [run_id]
    assert runs[0]["state"] in ("failed", "succeeded")
    # The worker lives on and takes the next run.
    [next_id] = submit(cluster, "slow")
    cluster.wait_until(lambda rs: any(r["id"] == next_id and r["state"] == "succeeded"
                                      for r in rs), timeout=60, message="the next run")
    assert worker.alive()


def test_a_standby_coordinator_takes_over_after_kill_9(cluster):
    cluster.write_config(CONFIG)
    out = cluster.root / "ran.txt"
    cluster.add_workflow("quick", marking(out, 0.1), execution_mode="real-time")
    first = cluster.start_coordinator("c1")
    holder = cluster.coordinator_pid()
    standby = cluster.start_coordinator("c2", active=False)
    cluster.start_worker("real-time", "rt1")
    before = submit(cluster, "quick", 3)
    cluster.wait_until(lambda rs: finished(rs, 3), message="runs before the kill")
    assert cluster.coordinator_pid() == holder, "the standby must not hold the lock"

    first.kill()
    wait_for(lambda: cluster.coordinator_pid() not in (None, holder), 60,
             message="the standby to take the lock")
    assert standby.alive()
    after = submit(cluster, "quick", 3)
    runs = cluster.wait_until(lambda rs: finished(rs, 6), message="runs after the kill")
    assert [r["state"] for r in runs] == ["succeeded"] * 6
    assert marks(out) == collections.Counter(before + after)


def test_a_broker_wiped_clean_loses_no_dispatched_run(cluster):
    cluster.write_config(CONFIG)
    out = cluster.root / "ran.txt"
    cluster.add_workflow("quick", marking(out, 0.1), execution_mode="real-time")
    # A worker that registered and then nobody behind it: what it is sent stays in Redis.
    now = datetime.now().astimezone()
    cluster.start_coordinator()
    cluster.sql("INSERT INTO workers (name, host, pool, concurrency, pid, started_at,"
                " heartbeat_at) VALUES ('ghost', 'nowhere', 'real-time', 3, 1, %s, %s)",
                (now, now + timedelta(days=1)))
    ids = submit(cluster, "quick", 3)
    cluster.wait_until(lambda rs: len(rs) == 3 and all(r["dispatch_token"] for r in rs),
                       message="the runs to be dispatched")

    cluster.wipe_broker()
    cluster.sql("DELETE FROM workers WHERE name = 'ghost'")
    cluster.start_worker("real-time", "rt1")

    runs = cluster.wait_until(lambda rs: finished(rs, 3), timeout=60,
                              message="the runs to go back in line and run")
    assert [r["state"] for r in runs] == ["succeeded"] * 3
    assert marks(out) == collections.Counter(ids)


def test_eco_runs_wait_for_their_window_and_a_promoted_run_overtakes(cluster):
    now = datetime.now().astimezone()
    opens = (now + timedelta(hours=2)).replace(second=0, microsecond=0)
    window = f"{opens:%H:%M}-{opens + timedelta(hours=1):%H:%M}"
    cluster.write_config(CONFIG + f'\n[pools.eco]\noff_peak = "{window}"\n')
    out, gate = cluster.root / "ran.txt", cluster.root / "gate"
    held = ["sh", "-c", f'echo "$EASYFLOW_RUN_ID" >> {out}; until [ -e {gate} ]; do sleep 0.05;'
                        " done"]
    cluster.add_workflow("held", held, execution_mode="balanced")
    cluster.add_workflow("batchy", marking(out, 0.1))
    cluster.start_coordinator()
    cluster.start_worker("balanced", "bal1")
    cluster.start_worker("eco", "eco1")

    [holder] = submit(cluster, "held")
    cluster.wait_until(lambda rs: rs and rs[0]["started_at"], message="the balanced run")
    older = submit(cluster, "held", 2)
    [waiting] = submit(cluster, "batchy", 1, "--mode", "eco")
    cluster.start_worker("real-time", "rt1")
    [urgent] = submit(cluster, "batchy", 1, "--mode", "eco", "--deadline", "30m")

    runs = cluster.wait_until(
        lambda rs: any(r["id"] == urgent and r["state"] == "succeeded" for r in rs),
        message="the promoted run")
    by_id = {r["id"]: r for r in runs}
    assert (by_id[urgent]["mode"], by_id[urgent]["pool"]) == ("real-time", "real-time")
    assert all(by_id[i]["started_at"] is None for i in older), "it overtook the balanced runs"
    assert by_id[waiting]["state"] == "queued" and by_id[waiting]["dispatch_token"] is None
    assert datetime.fromisoformat(by_id[waiting]["not_before"]) == opens

    gate.touch()
    runs = cluster.wait_until(lambda rs: all(r["state"] == "succeeded" for r in rs
                                             if r["id"] != waiting), message="the balanced runs")
    assert marks(out) == collections.Counter([holder, *older, urgent])
    assert next(r for r in runs if r["id"] == waiting)["state"] == "queued"


def test_the_coordinator_notifies_a_workers_run_once_and_serves_metrics(cluster):
    port, calls = free_port(), cluster.root / "calls.jsonl"
    cluster.write_config(CONFIG + f'\n[metrics]\nlisten = "127.0.0.1:{port}"\n')
    keeper = [sys.executable, "-c", f"import sys; open({str(calls)!r}, 'a').write("
              "sys.stdin.read().replace(chr(10), ' ') + chr(10))"]
    cluster.add_workflow("breaks", ["false"], execution_mode="real-time",
                         notify={"command": keeper})
    cluster.start_coordinator()
    cluster.start_worker("real-time", "rt1")

    [run_id] = submit(cluster, "breaks")
    runs = cluster.wait_until(lambda rs: finished(rs, 1), message="the run to fail")
    assert runs[0]["state"] == "failed" and runs[0]["worker"] == "rt1"
    wait_for(lambda: calls.exists() and calls.read_text(), message="the failure notified")
    [event] = [json.loads(line) for line in calls.read_text().splitlines()]
    assert (event["event"], event["id"]) == ("failure", run_id)

    served = scrape(port)
    assert served[("easyflow_daemon_up", ())] == 1
    assert served[("easyflow_runs_total", (("mode", "real-time"), ("state", "failed"),
                                           ("workflow", "breaks")))] == 1
    assert served[("easyflow_pool_workers", (("pool", "real-time"), ("state", "idle")))] == 1
    printed = samples(cluster.cli("metrics").stdout)  # `easyflow metrics`, from PostgreSQL
    assert printed[("easyflow_runs_total", (("mode", "real-time"), ("state", "failed"),
                                            ("workflow", "breaks")))] == 1
    assert [row["state"] for row in cluster.sql("SELECT state FROM notifications")] == [
        "delivered"]
    assert len(calls.read_text().splitlines()) == 1


# The coordinator's periodic look for runs nobody holds comes every third of these (100 s):
# what happens sooner here, a NOTIFY woke it for.
QUIET_CONFIG = """
[cluster]
lease = "5m"
dispatch_timeout = "5m"
"""
PROMPTLY_S = 30.0  # generous on a loaded box; without the NOTIFY it takes 100 s


def test_a_schedule_added_to_a_running_coordinator_fires_and_a_new_worker_runs_it_at_once(
        cluster):
    cluster.write_config(QUIET_CONFIG)
    out = cluster.root / "ran.txt"
    cluster.start_coordinator()
    cluster.add_workflow("ticking", marking(out, 0))  # added while the coordinator runs
    schedule_id = int(cluster.cli("schedule", "add", "ticking", "--every", "1s", "--mode",
                                  "real-time").stdout)
    [fired] = cluster.wait_until(bool, timeout=PROMPTLY_S, message="the schedule's first fire")
    assert fired["schedule_id"] == schedule_id  # no worker yet: it waits
    cluster.cli("schedule", "pause", str(schedule_id))  # the coordinator has nothing due now

    cluster.start_worker("real-time", "rt1")
    runs = cluster.wait_until(lambda rs: rs[0]["state"] == "succeeded", timeout=PROMPTLY_S,
                              message="the waiting run, on the new worker")
    joined = cluster.worker_row("rt1")["started_at"]
    assert datetime.fromisoformat(runs[0]["claimed_at"]) - joined < timedelta(
        seconds=PROMPTLY_S)
    assert marks(out)[fired["id"]] == 1
