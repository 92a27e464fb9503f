"""Every report gives the same dict on PostgreSQL as on SQLite for the same runs: the example
workflows in every mode, written through both queues with a fake clock (outcomes of every
kind, deadlines met and missed, off-peak and charged runs, retries, runs still queued or
running, pruned days), then read back by each report function."""

import dataclasses
import enum
import math
import random
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from easyflow_cli.core.config import load_config
from easyflow_cli.core.costs import Prices
from easyflow_cli.core.forecast import Forecast, Interval, Unit
from easyflow_cli.core.model import Mode, Outcome, PoolName, RunState, Trigger
from easyflow_cli.core.objectives import Objectives
from easyflow_cli.core.planning import QueuePolicy, plan_retry, plan_run
from easyflow_cli.core.receipts import Pricing
from easyflow_cli.core.spec import parse_workflow_text
from easyflow_cli.reporting.accounting import (
    Period,
    cost_sums,
    earliest_start,
    has_history,
    latency_stats,
    pool_use,
    workflow_history,
)
from easyflow_cli.reporting.advice import advice_report
from easyflow_cli.reporting.attainment import attainment_report, kept_counts
from easyflow_cli.reporting.hosts import local_host
from easyflow_cli.reporting.receipts import run_receipt
from easyflow_cli.reporting.replay import replayed_runs
from easyflow_cli.reporting.reports import QUANTILES, cost_report, latency_report, pools_report
from easyflow_cli.reporting.run_totals import SettledTotals, run_totals
from easyflow_cli.reporting.running import running_now
from easyflow_cli.reporting.timeline import Timeline
from easyflow_cli.reporting.why import explain_run
from easyflow_cli.storage.run_queue import RunEnd, RunStart
from easyflow_cli.storage.store import Store
from tests.conftest import EXAMPLES, REPO

pytest.importorskip("psycopg", reason="the [cluster] extra is not installed")
from easyflow_cli.storage.pg_store import PgStore  # noqa: E402

# Across New York's change back from daylight saving time (1 November 2026): a 25-hour day.
T0 = datetime(2026, 10, 30, 18, 0, tzinfo=UTC)
END = T0 + timedelta(days=4)
ZONE = ZoneInfo("America/New_York")
RUNS = 100
PERIODS = [Period(None, END), Period(T0 + timedelta(days=1, hours=7), END),
           Period(T0 + timedelta(hours=20), T0 + timedelta(days=3), "data-sync")]


@dataclasses.dataclass
class Script:
    """One run's life, drawn once and played on both backends alike."""

    workflow: int
    trigger: Trigger
    mode: Mode | None
    deadline_h: float | None
    wait_s: float
    length_s: float
    ending: str  # queued, cancelled, running, or a finished RunState's value
    foreground: bool
    off_peak: bool | None
    measured: bool | None
    charged: bool
    followed: bool | None


def scripts(seed: int = 11) -> list[Script]:
    rng = random.Random(seed)
    endings = ["succeeded"] * 12 + ["failed"] * 3 + ["timed_out", "cancelled", "queued",
                                                     "running"]
    return [Script(rng.randrange(4), rng.choice([Trigger.MANUAL, Trigger.SCHEDULE]),
                   rng.choice([None, *Mode]), rng.choice([None, 0.01, 0.5, 8.0]),
                   round(rng.choice([0.0, 0.4, 2.5, 90.0, rng.uniform(0, 9000)]), 6),
                   round(rng.choice([0.2, 4.0, rng.uniform(0, 900), rng.uniform(0, 7200)]), 6),
                   rng.choice(endings), rng.random() < 0.05, rng.choice([True, False, None]),
                   rng.random() < 0.5, rng.random() < 0.3, rng.choice([True, False, None]))
            for _ in range(RUNS)]


def series(unit: Unit, values: list[float]) -> Forecast:
    hour = timedelta(hours=1)
    start = T0 - timedelta(days=1)
    return Forecast(unit, f"test {unit}", tuple(
        Interval(start + i * hour, start + (i + 1) * hour, values[i % len(values)])
        for i in range(24 * 7)))


class Series:
    """A tariff and a carbon forecast over the whole history (a `PricingSource`)."""

    pricing = Pricing(Prices({m: (0.10, 0.04) for m in Mode}, 0.02, "USD"), 15.0,
                      series(Unit.PER_KWH, [0.30, 0.12, 0.22]),
                      series(Unit.G_CO2_PER_KWH, [420, 180, 260, 90]))

    def current(self) -> Pricing:
        return self.pricing


def play(store, specs, scripted: list[Script], host: str | None) -> None:
    """Queue, claim, start and end each run at its times; a failed run's retry follows it.
    `host`: the machine a cluster's worker would record as it accepts the run."""
    queue = store.queue
    for number, script in enumerate(scripted):
        spec = specs[script.workflow]
        at = T0 + timedelta(minutes=25 * number, microseconds=number * 1013)
        deadline = None if script.deadline_h is None else at + timedelta(hours=script.deadline_h)
        plan = plan_run(spec, trigger=script.trigger, now=at, policy=QueuePolicy(),
                        override=script.mode, deadline=deadline)
        plan = dataclasses.replace(plan, followed=script.followed)
        run_id = queue.enqueue([plan])[0]
        if script.ending == "queued":
            continue
        if script.ending == "cancelled":
            queue.cancel([run_id], now=at + timedelta(seconds=30), error="cancelled")
            continue
        end = _run(store, run_id, script, at, host)
        if end is not None and end.outcome.state is RunState.FAILED:
            retry = plan_retry(queue.get(run_id), spec, end.at)
            if retry is not None:
                _run(store, queue.enqueue([retry])[0],
                     dataclasses.replace(script, ending="succeeded"), end.at, host)


def _run(store, run_id: int, script: Script, at: datetime, host: str | None) -> RunEnd | None:
    queue = store.queue
    run = queue.get(run_id)
    pool = PoolName.FOREGROUND if script.foreground else PoolName(run.mode.value)
    began = at + timedelta(seconds=script.wait_s)
    queue.claim_ids([run_id], now=began, pool=pool, worker="w1")
    if host is not None:
        with store.write() as conn:
            conn.execute("UPDATE runs SET host = %s WHERE id = %s", (host, run_id))
    queue.start([RunStart(run_id, began, at, pid=4321, off_peak=script.off_peak)])
    if script.ending == "running":
        return None
    queue.pricing = Series() if script.charged else None
    cpu = script.length_s / 3
    outcome = Outcome(RunState(script.ending), 0 if script.ending == "succeeded" else 1, None,
                      cpu, cpu / 10, 2048, cpu * 11 if script.measured else None)
    end = RunEnd(run_id, outcome, began + timedelta(seconds=script.length_s), began,
                 deadline=run.deadline)
    queue.finish([end])
    return end


def prune_first_day(store) -> None:
    old = store.queue.finished_before(T0 + timedelta(days=1, hours=3), limit=10_000)
    assert old
    store.queue.prune(old, zone=ZONE)


@pytest.fixture(scope="module")
def config():
    return load_config(REPO / "config" / "easyflow.toml")


@pytest.fixture
def both(tmp_path, database_url):
    specs = [parse_workflow_text(path.read_text(), str(path), verify=False)
             for path in sorted(EXAMPLES.glob("*.toml"))]
    with Store.open(tmp_path / "home") as sqlite, PgStore(database_url) as pg:
        for store, host in ((sqlite, None), (pg, local_host())):
            store.save_workflows(specs, T0)
            play(store, specs, scripts(), host)
        yield sqlite, pg


def every_report(store, config, pruned: bool) -> dict:
    prices, watts = Prices.from_config(config), config.costs.watts_per_core
    objectives = Objectives.from_config(config)
    workers = {m.value: config.pool(m).workers for m in Mode}
    reports: dict = {"totals": run_totals(store), "settled": SettledTotals().read(store),
                     "replay": replayed_runs(store, T0 - timedelta(days=1), END),
                     "running": running_now(store.queue, END),
                     "history": {wf: (has_history(store, wf), workflow_history(store, wf))
                                 for wf in ("data-sync", "weekly-analytics", "nothing")}}
    for number, period in enumerate(PERIODS):
        for by in ("mode", "workflow", "day"):
            reports[number, by] = cost_report(cost_sums(store, period, by, ZONE), prices, watts,
                                              by, {})
        attainment = attainment_report(kept_counts(store, period, objectives, ZONE), objectives)
        reports[number, "latency"] = latency_report(
            latency_stats(store, period, QUANTILES, ZONE), {}, attainment)
        first = earliest_start(store, period)
        timeline = Timeline(period.since.timestamp() if period.since else first,
                            period.until.timestamp(), 8)
        reports[number, "first"] = first
        reports[number, "pools"] = pools_report(pool_use(store, period, timeline, ZONE), workers,
                                                {}, timeline, {})
        reports[number, "advise"] = advice_report(store, config, period, END)
    if not pruned:  # the runs explained and receipted are still in detail
        for run_id in (3, 40, 41, 97, RUNS):
            reports["why", run_id] = explain_run(store, config, run_id, END)
            reports["receipt", run_id] = run_receipt(store, store.queue.get(run_id), config)
    return reports


def plain(value):
    """Dataclasses, enums and tuples as the dicts, values and lists they hold."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return plain({f.name: getattr(value, f.name) for f in dataclasses.fields(value)})
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, dict):
        return {plain(k) if not isinstance(k, tuple) else tuple(map(plain, k)): plain(v)
                for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain(item) for item in value]
    return value


EXACT = ("p50", "p95", "p99")  # percentiles are values read off the runs: equal to the bit


def assert_same(sqlite, pg, where="") -> None:
    """Equal; sums and times as floats within what the order of addition and SQLite's
    millisecond julian days round away."""
    if where.endswith(EXACT):
        assert sqlite == pg, f"{where}: {sqlite!r} != {pg!r}"
    elif isinstance(sqlite, float) or isinstance(pg, float):
        assert isinstance(pg, int | float) and isinstance(sqlite, int | float), where
        assert math.isclose(sqlite, pg, rel_tol=1e-9, abs_tol=1e-3), f"{where}: {sqlite} {pg}"
    elif isinstance(sqlite, dict):
        assert isinstance(pg, dict) and sorted(map(str, sqlite)) == sorted(map(str, pg)), (
            f"{where}: {sorted(map(str, sqlite))} != {sorted(map(str, pg))}")
        for key, value in sqlite.items():
            assert_same(value, pg[key], f"{where}/{key}")
    elif isinstance(sqlite, list):
        assert isinstance(pg, list) and len(sqlite) == len(pg), f"{where}: {sqlite} {pg}"
        for index, (mine, theirs) in enumerate(zip(sqlite, pg, strict=True)):
            assert_same(mine, theirs, f"{where}[{index}]")
    else:
        assert sqlite == pg, f"{where}: {sqlite!r} != {pg!r}"


def test_the_same_runs_give_the_same_reports_before_and_after_pruning(both, config):
    sqlite, pg = both
    assert pg.queue.latest(limit=1)[0].id == sqlite.queue.latest(limit=1)[0].id > RUNS
    assert_same(plain(every_report(sqlite, config, False)), plain(every_report(pg, config, False)))
    for store in both:
        prune_first_day(store)
    reports = plain(every_report(sqlite, config, True))
    assert reports["totals"]["runs"] and reports[1, "pools"]["nodes"]
    assert_same(reports, plain(every_report(pg, config, True)))


def test_pools_show_each_node_its_runs(database_url, config):
    specs = [parse_workflow_text(path.read_text(), str(path), verify=False)
             for path in sorted(EXAMPLES.glob("*.toml"))]
    with PgStore(database_url) as pg:
        pg.save_workflows(specs, T0)
        played = [dataclasses.replace(s, ending="succeeded", foreground=False)
                  for s in scripts()[:60]]
        play(pg, specs, played[:30], "node-b")
        play(pg, specs, played[30:50], "node-a")
        play(pg, specs, played[50:], None)  # taken by no worker that recorded itself
        period = Period(None, END)
        timeline = Timeline(earliest_start(pg, period), END.timestamp(), 12)
        report = pools_report(pool_use(pg, period, timeline, ZONE),
                              {m.value: 2 for m in Mode}, {}, timeline, {})
    assert [node["host"] for node in report["nodes"]] == ["node-a", "node-b", None]
    assert [node["runs"] for node in report["nodes"]] == [20, 30, 10]
    assert sum(node["runs"] for node in report["nodes"]) == sum(
        pool["runs"] for pool in report["pools"].values())
    assert sum(node["busy_hours"] for node in report["nodes"]) == pytest.approx(
        sum(pool["busy_hours"] for pool in report["pools"].values()), abs=1e-5)
    for mode in Mode:
        assert sum(node["pools"][mode.value]["runs"] for node in report["nodes"]) == (
            report["pools"][mode.value]["runs"])
