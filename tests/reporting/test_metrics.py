"""The metrics, as prometheus-client's own parser reads them, against a plain Python count over
every run of a varied history (the same one the reports' SQL is checked on)."""

from __future__ import annotations

import math

import pytest
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from easyflow_cli.core.config import load_config
from easyflow_cli.core.costs import Prices
from easyflow_cli.core.model import Mode
from easyflow_cli.reporting import accounting
from easyflow_cli.reporting.metrics import EasyflowCollector, LiveState, registry_of
from easyflow_cli.reporting.reports import cost_report
from easyflow_cli.reporting.run_totals import DURATION_BUCKETS, WAIT_BUCKETS
from easyflow_cli.storage.sqlite_queue import insert_runs
from easyflow_cli.storage.store import Store
from tests.reporting.test_reports_sql import COLUMNS, varied_runs

COLUMN = {name: index for index, name in enumerate(COLUMNS)}
ENDED = ("succeeded", "failed", "timed_out", "cancelled")


@pytest.fixture
def history(tmp_path):
    rows = varied_runs(400)
    with Store.open(tmp_path / "home") as store:
        insert_runs(store, COLUMNS, rows)
        yield store, rows


def scrape(store: Store, live: LiveState | None = None) -> dict:
    """Every family by name, parsed from the text prometheus-client writes."""
    config = load_config()
    collector = EasyflowCollector(lambda: Store(store.path), lambda: config,
                                  lambda _store: live)
    text = generate_latest(registry_of(collector)).decode()
    return {family.name: family for family in text_string_to_metric_families(text)}


def values(family, name: str | None = None) -> dict[tuple, float]:
    return {tuple(sorted(s.labels.items())): s.value for s in family.samples
            if name is None or s.name == name}


def test_runs_total_counts_ended_runs_by_workflow_mode_and_state(history, home):
    store, rows = history
    expected: dict[tuple, float] = {}
    for row in rows:
        if row[COLUMN["finished_at"]] is not None and row[COLUMN["state"]] in ENDED:
            key = (("mode", row[COLUMN["mode"]]), ("state", row[COLUMN["state"]]),
                   ("workflow", row[COLUMN["workflow"]]))
            expected[key] = expected.get(key, 0) + 1
    family = scrape(store)["easyflow_runs"]
    assert family.type == "counter"
    assert values(family, "easyflow_runs_total") == expected


@pytest.mark.parametrize("name, column, bounds", [
    ("easyflow_run_duration_seconds", "duration_s", DURATION_BUCKETS),
    ("easyflow_queue_wait_seconds", "queue_wait_s", WAIT_BUCKETS),
])
def test_histograms_by_mode_count_every_bucket_as_python_does(history, home, name, column,
                                                              bounds):
    store, rows = history
    family = scrape(store)[name]
    assert family.type == "histogram"
    buckets = values(family, f"{name}_bucket")
    for mode in Mode:
        found = [row[COLUMN[column]] for row in rows if row[COLUMN["mode"]] == mode.value
                 and row[COLUMN["duration_s"]] is not None and row[COLUMN[column]] is not None]
        assert found, "the history has runs of every mode"
        for bound in (*bounds, math.inf):
            le = "+Inf" if bound == math.inf else repr(bound)
            assert buckets[(("le", le), ("mode", mode.value))] == sum(v <= bound for v in found)
        assert values(family, f"{name}_count")[(("mode", mode.value),)] == len(found)
        assert values(family, f"{name}_sum")[(("mode", mode.value),)] == pytest.approx(
            sum(found))


def test_money_and_energy_are_what_report_costs_says(history, home):
    store, _ = history
    config = load_config()
    report = cost_report(accounting.cost_sums(store, accounting.Period(None, None)),
                         Prices.from_config(config), config.costs.watts_per_core, "mode", {})
    families = scrape(store)
    cost = values(families["easyflow_cost_dollars"])
    energy = values(families["easyflow_energy_joules"])
    for mode, totals in report["by_mode"].items():
        assert cost[(("mode", mode),)] == pytest.approx(totals["cost"])
        assert energy[(("mode", mode),)] == pytest.approx(totals["energy_wh"] * 3600)
    assert values(families["easyflow_savings_dollars"])[()] == pytest.approx(report["savings"])
    assert report["savings"] > 0


def test_queue_depth_and_the_daemon_state(history, home):
    store, rows = history
    queued = {m.value: sum(r[COLUMN["state"]] == "queued" and r[COLUMN["mode"]] == m.value
                           for r in rows) for m in Mode}
    alone = scrape(store)
    assert values(alone["easyflow_queue_depth"]) == {(("mode", m),): n for m, n in queued.items()}
    assert values(alone["easyflow_daemon_up"]) == {(): 0}
    assert "easyflow_pool_workers" not in alone  # no daemon: no workers to count
    live = scrape(store, LiveState({"eco": {"starting": 0, "idle": 1, "busy": 1,
                                            "retiring": 0}}))
    assert values(live["easyflow_daemon_up"]) == {(): 1}
    assert values(live["easyflow_pool_workers"]) == {
        (("pool", "eco"), ("state", state)): count
        for state, count in {"starting": 0, "idle": 1, "busy": 1, "retiring": 0}.items()}


def test_an_empty_database_gives_zeros_and_no_made_up_series(tmp_path, home):
    with Store.open(tmp_path / "empty") as store:
        families = scrape(store)
    assert values(families["easyflow_runs"]) == {}
    assert values(families["easyflow_run_duration_seconds"]) == {}
    assert set(values(families["easyflow_cost_dollars"]).values()) == {0}


def test_notifications_failed_counts_given_up_deliveries_by_channel(history, home):
    store, _ = history
    assert values(scrape(store)["easyflow_notifications_failed"],
                  "easyflow_notifications_failed_total") == {
        (("channel", c),): 0 for c in ("command", "webhook", "email")}
    with store.write() as conn:
        for channel, state in (("webhook", "failed"), ("webhook", "failed"),
                               ("webhook", "delivered"), ("email", "failed"),
                               ("command", "pending")):
            conn.execute("INSERT INTO notifications (event_id, event, workflow, run_id, channel,"
                         " created_at, payload, state) VALUES (hex(randomblob(8)), 'failure',"
                         " 'w', NULL, ?, '2026-12-02T00:00:00.000000Z', '{}', ?)",
                         (channel, state))
    assert values(scrape(store)["easyflow_notifications_failed"],
                  "easyflow_notifications_failed_total") == {
        (("channel", "command"),): 0, (("channel", "webhook"),): 2, (("channel", "email"),): 1}
