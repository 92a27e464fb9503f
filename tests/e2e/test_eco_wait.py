"""`run --now` of an eco workflow outside its off-peak hours says, when it is queued, when it
will start, what it will cost, and what running it now in real-time would cost instead."""

from __future__ import annotations

import json
import re
import subprocess
import threading
from datetime import datetime, timedelta

import pytest

pytest_plugins = ["tests.daemon_harness"]
pytest.register_assert_rewrite("tests.daemon_harness")
from tests.conftest import easyflow_command  # noqa: E402
from tests.daemon_harness import DaemonHarness, parse_time  # noqa: E402

pytestmark = pytest.mark.e2e


@pytest.fixture
def peak(daemon: DaemonHarness) -> DaemonHarness:
    """A daemon whose off-peak hours (for eco work and for the tariff) begin in two hours."""
    begin = datetime.now().astimezone() + timedelta(hours=2)
    window = f"{begin:%H:%M}-{begin + timedelta(hours=2):%H:%M}"
    daemon.write_config(f"""
        [pools.eco]
        off_peak = "{window}"

        [costs]
        off_peak = "{window}"
        """)
    daemon.add_workflow("nightly", ["true"], execution_mode="eco", timeout="20m")
    daemon.add_workflow("now", ["true"])
    daemon.start()
    return daemon


def test_no_wait_says_when_and_for_how_much(peak: DaemonHarness) -> None:
    result = peak.cli("run", "nightly", "--now", "--no-wait")
    run_id = int(result.stdout)
    talk = result.stderr.splitlines()
    assert talk[0] == f"run {run_id}: nightly in eco mode (workflow)"
    starts = re.fullmatch(rf"run {run_id} waits for off-peak hours: it starts (.+), in "
                          r"(1h59m|2h|2h1m)", talk[1])
    assert starts, talk
    assert re.fullmatch(r"Run then: \$\S+ · Run now: \$\S+ "
                        r"\(easyflow run nightly --now --mode real-time\)", talk[2]), talk
    assert peak.run(run_id)["state"] == "queued"


def test_json_carries_the_start_and_both_costs(peak: DaemonHarness) -> None:
    result = peak.cli("run", "nightly", "--now", "--no-wait", "--json")
    record = json.loads(result.stdout)
    waits = parse_time(record["not_before"]) - datetime.now().astimezone()
    assert timedelta(hours=1, minutes=58) < waits <= timedelta(hours=2)
    quote = record["quote"]
    assert quote["currency"] == "USD"
    # The default minute at eco's off-peak price against real-time's peak price: 0.02 vs 0.10.
    assert quote["cost"] == pytest.approx(60 / 3600 * 0.02)
    assert quote["real_time_cost"] == pytest.approx(60 / 3600 * 0.10)
    assert "waits for off-peak hours" in result.stderr


def test_a_run_that_starts_at_once_says_nothing_more(peak: DaemonHarness) -> None:
    result = peak.cli("run", "now", "--now", "--no-wait", "--json")
    assert "quote" not in json.loads(result.stdout)
    assert "waits" not in result.stderr
    forced = peak.cli("run", "nightly", "--now", "--no-wait", "--mode", "real-time")
    assert "waits" not in forced.stderr


def test_runs_queued_together_say_it_too(peak: DaemonHarness) -> None:
    result = peak.cli("run", "nightly", "now", "--now", "--no-wait", "--count", "2", "--json")
    records = json.loads(result.stdout)
    first = records[0]["id"]
    talk = result.stderr.splitlines()
    assert talk[:2] == [f"runs {first}-{first + 1}: nightly in eco mode (workflow)",
                        f"runs {first + 2}-{first + 3}: now in real-time mode (manual)"], talk
    assert re.fullmatch(rf"runs {first}-{first + 1} wait for off-peak hours: they start .+, in "
                        r"(1h59m|2h|2h1m)", talk[2]), talk
    assert re.fullmatch(r"Run then: \$\S+ each · Run now: \$\S+ each "
                        r"\(easyflow run nightly --now --mode real-time\)", talk[3]), talk
    assert len(talk) == 4, talk
    assert [r["quote"]["cost"] for r in records[:2]] == [pytest.approx(60 / 3600 * 0.02)] * 2
    assert [r["quote"]["real_time_cost"] for r in records[:2]] == [
        pytest.approx(60 / 3600 * 0.10)] * 2
    assert ["quote" in r for r in records[2:]] == [False, False]


def test_runs_waited_for_say_it_before_waiting(peak: DaemonHarness) -> None:
    with subprocess.Popen([*easyflow_command(), "run", "nightly", "--now", "--count", "2"],
                          env=peak.env(), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                          stderr=subprocess.PIPE, text=True) as waiting:
        watchdog = threading.Timer(60, waiting.kill)  # a missing line fails, never hangs
        watchdog.start()
        try:
            lines = [waiting.stderr.readline() for _ in range(3)]
        finally:
            watchdog.cancel()
            waiting.kill()
    first = int(lines[0].split()[1].split("-")[0])
    assert lines[1].startswith(f"runs {first}-{first + 1} wait for off-peak hours: they start "
                               ), lines
    assert lines[2].startswith("Run then: "), lines
