"""`report costs` totals are the sum of the runs' receipts: runs a tariff priced as they ended
and runs the pools' prices price, with and without carbon, in detail and once pruned."""

import random
from datetime import UTC, datetime, timedelta

import pytest

from easyflow_cli.core.config import load_config
from easyflow_cli.core.costs import Prices
from easyflow_cli.core.forecast import Forecast, Interval, Unit
from easyflow_cli.core.model import (
    CostPriority,
    Mode,
    ModeReason,
    Outcome,
    PoolName,
    RunState,
    Trigger,
)
from easyflow_cli.core.planning import PlannedRun
from easyflow_cli.core.receipts import Pricing
from easyflow_cli.reporting.accounting import Period, cost_sums
from easyflow_cli.reporting.receipts import run_receipt
from easyflow_cli.reporting.reports import cost_report
from easyflow_cli.reporting.run_totals import run_totals, totals_from
from easyflow_cli.storage import summaries
from easyflow_cli.storage.run_queue import RunEnd, RunStart
from easyflow_cli.storage.store import Store
from tests.reporting.test_reports_sql import assert_close

T0 = datetime(2026, 11, 20, tzinfo=UTC)
DAYS = 4


def hourly(unit: Unit, rng: random.Random, low: float, high: float) -> Forecast:
    hour = timedelta(hours=1)
    return Forecast(unit, f"test {unit}", tuple(
        Interval(T0 + i * hour, T0 + (i + 1) * hour, round(rng.uniform(low, high), 4))
        for i in range(24 * (DAYS + 1))))


class Switchable:
    """A `PricingSource` whose series come and go, as a configured file would."""

    def __init__(self, prices: Prices, rng: random.Random) -> None:
        self.loaded = Pricing(prices, 15.0, hourly(Unit.PER_KWH, rng, -0.05, 0.40),
                              hourly(Unit.G_CO2_PER_KWH, rng, 50, 450))
        self.pricing = self.loaded

    def current(self) -> Pricing:
        return self.pricing


def finish_runs(store: Store, prices: Prices, count: int) -> None:
    rng = random.Random(15)
    source = Switchable(prices, rng)
    store.queue.pricing = source
    for _ in range(count):
        mode = rng.choice(list(Mode))
        enqueued = T0 + timedelta(seconds=rng.uniform(0, DAYS * 86400))
        started = enqueued + timedelta(seconds=rng.choice([0.01, 60, rng.uniform(0, 8 * 3600)]))
        length = rng.uniform(1, 3 * 3600)
        source.pricing = rng.choice([source.loaded, Pricing(prices, 15.0),
                                     Pricing(prices, 15.0, carbon=source.loaded.carbon)])
        run_id = store.queue.enqueue([PlannedRun(
            f"wf-{rng.randrange(3)}", Trigger.SCHEDULE, mode, ModeReason.SCHEDULE,
            CostPriority.NORMAL, None, enqueued)])[0]
        store.queue.claim_ids([run_id], now=started, pool=PoolName.of(mode), worker="w")
        store.queue.start([RunStart(run_id, started, enqueued, 1, None, rng.random() < 0.3)])
        cpu = rng.uniform(0, length)
        energy = rng.choice([None, rng.uniform(0, 5e5)])
        outcome = Outcome(RunState.SUCCEEDED, 0, None, cpu, cpu / 10, 0, energy, length)
        store.queue.finish([RunEnd(run_id, outcome, started + timedelta(seconds=length),
                                   started)])


def receipt_totals(store: Store, config) -> dict[str, float]:
    totals = dict.fromkeys(("cost", "baseline_cost", "carbon_g", "baseline_carbon_g"), 0.0)
    for run in store.queue.latest(limit=10_000):
        receipt = run_receipt(store, run, config)
        assert receipt is not None
        for key in totals:
            totals[key] += getattr(receipt, key) or 0.0
    return totals


def report(store: Store, prices: Prices, by: str = "mode") -> dict:
    return cost_report(cost_sums(store, Period(None, None), by, UTC), prices, 15.0, by, {})


@pytest.fixture
def history(tmp_path):
    config = load_config(environ={"EASYFLOW_HOME": str(tmp_path)})
    prices = Prices.from_config(config)
    with Store.open(tmp_path / "home") as store:
        finish_runs(store, prices, 240)
        yield store, config, prices


def test_report_costs_totals_are_the_sum_of_the_receipts(history):
    store, config, prices = history
    receipts = receipt_totals(store, config)
    costs = report(store, prices)
    assert costs["total_cost"] == pytest.approx(receipts["cost"], rel=1e-9)
    assert costs["baseline_cost"] == pytest.approx(receipts["baseline_cost"], rel=1e-9)
    assert costs["carbon_g"] == pytest.approx(receipts["carbon_g"], rel=1e-9)
    assert costs["baseline_carbon_g"] == pytest.approx(receipts["baseline_carbon_g"], rel=1e-9)
    charged = store.conn.execute("SELECT count(tariff_cost), count(carbon_g),"
                                 " count(*) FROM runs").fetchone()
    assert 0 < charged[0] < charged[1] < charged[2]  # some by the tariff, some by the pools


def test_each_group_is_the_sum_of_its_runs_receipts(history):
    store, config, prices = history
    by_workflow = {g["key"]: g["cost"] for g in report(store, prices, "workflow")["groups"]}
    for workflow, cost in by_workflow.items():
        runs = store.queue.latest(workflow=workflow, limit=10_000)
        assert cost == pytest.approx(sum(run_receipt(store, run, config).cost for run in runs),
                                     rel=1e-9)
    by_day = report(store, prices, "day")
    assert sum(g["cost"] for g in by_day["groups"]) == pytest.approx(by_day["total_cost"])


def test_pruned_runs_keep_what_they_were_charged(history):
    store, _, prices = history
    before = report(store, prices, "day")
    while ids := store.queue.finished_before(T0 + timedelta(days=2), limit=50):
        store.queue.prune(ids, zone=UTC)
    after = report(store, prices, "day")
    for key in ("total_cost", "baseline_cost", "carbon_g", "baseline_carbon_g"):
        assert after[key] == pytest.approx(before[key], rel=1e-9)


def test_the_metrics_count_the_same_cost_whole_and_run_by_run(history):
    store, _, prices = history
    expected = report(store, prices)
    for totals in (run_totals(store), totals_from(store, 1)):
        counted = cost_report(totals.cost_rows(), prices, 15.0, "mode", {})
        for key in ("total_cost", "baseline_cost", "carbon_g"):
            assert counted[key] == pytest.approx(expected[key], rel=1e-9)


def test_summarized_hours_keep_what_runs_were_charged(history):
    store, _, prices = history
    before = {by: report(store, prices, by) for by in ("mode", "workflow", "day")}
    metrics = cost_report(run_totals(store).cost_rows(), prices, 15.0, "mode", {})
    with store.write() as conn:
        summaries.summarize_all(conn, T0 + timedelta(days=DAYS + 1))
    assert summaries.mark(store.conn) is not None
    for by, expected in before.items():
        after = report(store, prices, by)
        assert_close(after, expected)
        for key in ("total_cost", "baseline_cost", "carbon_g", "baseline_carbon_g"):
            assert after[key] == pytest.approx(expected[key], rel=1e-9)
    counted = cost_report(run_totals(store).cost_rows(), prices, 15.0, "mode", {})
    for key in ("total_cost", "baseline_cost", "carbon_g"):
        assert counted[key] == pytest.approx(metrics[key], rel=1e-9)
