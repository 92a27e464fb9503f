"""End-to-end: a real daemon serves `/metrics` and writes the textfile while a run runs; the
CLI's `easyflow metrics` and `status` agree with it."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

pytest_plugins = ["tests.daemon_harness"]
pytest.register_assert_rewrite("tests.daemon_harness")
from tests.daemon_harness import DaemonHarness, wait_for  # noqa: E402
from tests.scrape import free_port, samples, scrape  # noqa: E402

pytestmark = pytest.mark.e2e


def test_metrics_are_served_during_a_run_count_it_once_it_ends_and_survive_a_restart(
        daemon: DaemonHarness, tmp_path: Path):
    port, textfile = free_port(), tmp_path / "easyflow.prom"
    daemon.write_config(textwrap.dedent(f"""
        [pools.real-time]
        workers = 1
        [pools.balanced]
        workers = 1
        [pools.eco]
        workers = 1
        off_peak = ""
        [metrics]
        listen = "127.0.0.1:{port}"
        textfile = "{textfile}"
    """))
    gate = tmp_path / "gate"
    daemon.add_workflow("slow", ["sh", "-c", f"while [ ! -e {gate} ]; do sleep 0.05; done"])
    daemon.start()
    run = daemon.submit("slow")
    daemon.wait_until_started(run["id"])

    during = scrape(port)
    assert during[("easyflow_daemon_up", ())] == 1
    assert during[("easyflow_pool_workers", (("pool", "real-time"), ("state", "busy")))] == 1
    assert ("easyflow_runs_total", (("mode", "real-time"), ("state", "succeeded"),
                                    ("workflow", "slow"))) not in during
    status = daemon.cli_json("status", "--json")
    assert [(r["id"], r["workflow"], r["mode"], r["pool"]) for r in status["running"]] == [
        (run["id"], "slow", "real-time", "real-time")]
    assert daemon.cli("status", "--csv").stdout.splitlines()[1].startswith(f"{run['id']},slow,")
    assert wait_for(lambda: textfile.exists(), message="the textfile")

    gate.touch()
    daemon.wait_for_state(run["id"], "succeeded")
    after = wait_for(lambda: (lambda s: s if s[("easyflow_run_duration_seconds_count",
                                                 (("mode", "real-time"),))] == 1 else None)(
        scrape(port)), message="the run to be counted")
    assert after[("easyflow_runs_total", (("mode", "real-time"), ("state", "succeeded"),
                                          ("workflow", "slow")))] == 1
    printed = samples(daemon.cli("metrics").stdout)
    assert printed[("easyflow_daemon_up", ())] == 1
    assert printed[("easyflow_runs_total", (("mode", "real-time"), ("state", "succeeded"),
                                            ("workflow", "slow")))] == 1

    daemon.stop()
    final = samples(textfile.read_text())
    assert final[("easyflow_daemon_up", ())] == 0
    assert final[("easyflow_runs_total", (("mode", "real-time"), ("state", "succeeded"),
                                          ("workflow", "slow")))] == 1
    assert samples(daemon.cli("metrics").stdout)[("easyflow_daemon_up", ())] == 0

    daemon.start()  # counters come from the database: a restart does not reset them
    again = scrape(port)
    assert again[("easyflow_runs_total", (("mode", "real-time"), ("state", "succeeded"),
                                          ("workflow", "slow")))] == 1
    assert again[("easyflow_daemon_up", ())] == 1
