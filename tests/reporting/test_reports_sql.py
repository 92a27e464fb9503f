"""The reports' SQL (grouping, percentiles at their rank, slices of time added up off indexes)
against a plain Python computation over every run, on a small varied history."""

import math
import random
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from easyflow_cli.core.costs import Prices
from easyflow_cli.core.model import Mode
from easyflow_cli.core.stats import percentile
from easyflow_cli.core.timeutil import from_iso, to_iso
from easyflow_cli.reporting import accounting
from easyflow_cli.reporting.accounting import Period
from easyflow_cli.reporting.hosts import local_host
from easyflow_cli.reporting.reports import (
    QUANTILES,
    cost_report,
    latency_report,
    pools_report,
)
from easyflow_cli.reporting.timeline import Timeline
from easyflow_cli.storage.sqlite_queue import insert_runs
from easyflow_cli.storage.store import Store

T0 = datetime(2025, 11, 1, tzinfo=UTC)
COLUMNS = ("workflow", "trigger", "mode", "mode_reason", "cost_priority", "priority_rank",
           "state", "enqueued_at", "claimed_at", "started_at", "finished_at", "duration_s",
           "cpu_user_s", "cpu_system_s", "energy_j", "queue_wait_s", "off_peak", "deadline_met",
           "pool")
WORKERS = {"real-time": 4, "balanced": 2, "eco": 2}


def varied_runs(count: int, seed: int = 7) -> list[tuple]:
    """Finished runs of every kind, long ones crossing slices, and runs still queued, running
    or cancelled before they started."""
    rng = random.Random(seed)
    rows = []
    for _ in range(count):
        mode = rng.choice([m.value for m in Mode])
        enqueued = T0 + timedelta(seconds=rng.uniform(0, 9 * 86400))
        wait = rng.choice([0.0, 0.001, 1.5, 60.0, rng.uniform(0, 7200)])
        started = enqueued + timedelta(seconds=wait)
        length = rng.choice([0.0, 0.25, 3.0, rng.uniform(0, 600), rng.uniform(0, 20 * 3600)])
        finished = started + timedelta(seconds=length)
        kind = rng.random()
        state, claimed, begun, ended = "succeeded", started, started, finished
        if kind < 0.05:
            state, claimed, begun, ended = "queued", None, None, None
        elif kind < 0.1:
            state, ended = "running", None
        elif kind < 0.15:
            state, claimed, begun = "cancelled", None, None
        elif kind < 0.3:
            state = "failed"
        cpu = rng.choice([None, rng.uniform(0, length + 1)])
        settled = ended is not None and begun is not None
        rows.append((
            f"wf-{rng.randrange(4)}", "manual", mode, "manual", "normal", 1, state,
            to_iso(enqueued), to_iso(claimed), to_iso(begun), to_iso(ended),
            round(length, 6) if settled else None, cpu, 0.0 if cpu is not None else None,
            rng.choice([None, rng.uniform(0, 500)]) if settled else None,
            round(wait, 6) if begun else None, rng.choice([0, 1, None]) if begun else None,
            rng.choice([None, None, 0, 1]) if settled else None,
            "foreground" if rng.random() < 0.05 else (mode if claimed else None)))
    return rows


@pytest.fixture(params=[0, 1, 400], ids=["empty", "one-run", "varied"])
def history(request, tmp_path):
    with Store.open(tmp_path / "home") as store:
        rows = varied_runs(request.param)
        if request.param == 1:  # one finished run, so every report has something
            rows = [r for r in varied_runs(50) if r[6] == "succeeded"][:1]
        if rows:
            insert_runs(store, COLUMNS, rows)
        yield store


PERIODS = [
    Period(None, None),
    Period(T0 + timedelta(days=2), None),
    Period(None, T0 + timedelta(days=6)),
    Period(T0 + timedelta(days=1, hours=5), T0 + timedelta(days=3), "wf-1"),
    Period(None, None, "wf-2"),
]


def all_runs(store: Store) -> list[dict]:
    return [dict(r) for r in store.conn.execute("SELECT * FROM runs ORDER BY id")]


def in_period(run: dict, period: Period) -> bool:
    """Period.where() in Python: finished runs that occupied a worker."""
    return (run["duration_s"] is not None
            and (period.since is None or (run["finished_at"] or "") >= to_iso(period.since))
            and (period.until is None or (run["finished_at"] is not None
                                          and run["finished_at"] < to_iso(period.until)))
            and (not period.workflow or run["workflow"] == period.workflow))


def cpu_of(run: dict) -> float | None:
    if run["cpu_user_s"] is None or run["cpu_system_s"] is None:
        return None
    return run["cpu_user_s"] + run["cpu_system_s"]


# Whole-hour, half- and three-quarter-hour offsets; New York and Havana leave DST on
# 2025-11-02 inside the history (Havana at 01:00, back to midnight: a 25-hour day).
ZONES = ["UTC", "America/New_York", "Asia/Kathmandu", "Australia/Adelaide", "Pacific/Chatham",
         "America/St_Johns", "America/Havana"]


def local_day(finished_at: str, zone: str) -> str:
    return from_iso(finished_at).astimezone(ZoneInfo(zone)).date().isoformat()


@pytest.mark.parametrize("period", PERIODS)
@pytest.mark.parametrize(("by", "zone"), [("mode", "UTC"), ("workflow", "UTC"),
                                          *(("day", zone) for zone in ZONES)])
def test_cost_report_matches_python(history, period, by, zone):
    groups: dict[tuple, dict] = {}
    for run in filter(lambda r: in_period(r, period), all_runs(history)):
        key = {"mode": run["mode"], "workflow": run["workflow"],
               "day": local_day(run["finished_at"], zone)}[by]
        row = groups.setdefault((key, run["mode"], run["off_peak"]), {
            "grp": key, "mode": run["mode"], "off_peak": run["off_peak"], "runs": 0,
            "worker_s": 0.0, "cpu_s": 0.0, "energy_j": 0.0, "measured": 0,
            "unmeasured_cpu_s": 0.0})
        row["runs"] += 1
        row["worker_s"] += run["duration_s"]
        row["cpu_s"] += cpu_of(run) or 0.0
        row["energy_j"] += run["energy_j"] or 0.0
        row["measured"] += run["energy_j"] is not None
        row["unmeasured_cpu_s"] += (cpu_of(run) or 0.0) if run["energy_j"] is None else 0.0
    got = accounting.cost_sums(history, period, by, ZoneInfo(zone))
    assert {(r["grp"], r["mode"], r["off_peak"]): r["runs"] for r in got} == {
        key: r["runs"] for key, r in groups.items()}
    # Priced in the same order (off_peak NULL and 0 sort alike, either may come first).
    expected = [groups[(r["grp"], r["mode"], r["off_peak"])] for r in got]
    prices = Prices(per_hour={Mode.REAL_TIME: (0.1, 0.06), Mode.BALANCED: (0.08, 0.05),
                              Mode.ECO: (0.05, 0.02)}, cpu_hour_price=0.01, currency="USD")
    assert_close(cost_report(got, prices, 15.0, by, {}),
                 cost_report(expected, prices, 15.0, by, {}))


def assert_close(got: object, expected: object) -> None:
    """Equal, numbers to 1e-9 relative: the report carries sums unrounded, and SQLite adds
    them up in another order than Python does."""
    if isinstance(expected, dict):
        assert isinstance(got, dict) and got.keys() == expected.keys()
        for key in expected:
            assert_close(got[key], expected[key])
    elif isinstance(expected, list):
        assert isinstance(got, list) and len(got) == len(expected)
        for a, b in zip(got, expected, strict=True):
            assert_close(a, b)
    elif isinstance(expected, float):
        assert got == pytest.approx(expected, rel=1e-9, abs=1e-12)
    else:
        assert got == expected


@pytest.mark.parametrize("period", PERIODS)
def test_latency_report_matches_python(history, period, monkeypatch):
    samples: dict[str, dict] = {}
    for run in filter(lambda r: in_period(r, period), all_runs(history)):
        bucket = samples.setdefault(run["mode"], {"waits": [], "durations": [], "met": 0,
                                                  "missed": 0})
        if run["queue_wait_s"] is not None:
            bucket["waits"].append(run["queue_wait_s"])
        bucket["durations"].append(run["duration_s"])
        if run["deadline_met"] is not None:
            bucket["met" if run["deadline_met"] else "missed"] += 1
    expected = {mode: {
        "runs": len(b["durations"]), "deadlines_met": b["met"], "deadlines_missed": b["missed"],
        "queue_wait_s": {q: percentile(sorted(b["waits"]), q) if b["waits"] else None
                         for q in QUANTILES},
        "duration_s": {q: percentile(sorted(b["durations"]), q) for q in QUANTILES},
    } for mode, b in samples.items()}
    want = latency_report(expected, {})
    assert latency_report(accounting.latency_stats(history, period, QUANTILES), {}) == want
    # Larger histories read each percentile at its rank off an index instead.
    monkeypatch.setattr(accounting, "FETCH_ALL_BELOW", 0)
    assert latency_report(accounting.latency_stats(history, period, QUANTILES), {}) == want


def test_percentile_rank_from_either_end(history, monkeypatch):
    monkeypatch.setattr(accounting, "FETCH_ALL_BELOW", 0)
    durations = sorted(r["duration_s"] for r in all_runs(history)
                       if r["duration_s"] is not None and r["mode"] == "eco")
    stats = accounting.latency_stats(history, Period(None, None), (1, 25, 50, 51, 75, 100))
    for q, value in stats.get("eco", {"duration_s": {}})["duration_s"].items():
        assert value == durations[max(1, math.ceil(len(durations) * q / 100)) - 1]


# The pools report as it was computed before: every run's interval read, spread in Python.
NOW = "strftime('%Y-%m-%dT%H:%M:%fZ', 'now')"
EPOCH = "(julianday({}) - 2440587.5) * 86400.0"


def python_pool_use(store: Store, period: Period, timeline: Timeline) -> accounting.PoolUse:
    since, until = to_iso(period.since), to_iso(period.until)
    use = accounting.PoolUse({m.value: 0 for m in Mode},
                             {m.value: timeline.zeros() for m in Mode},
                             {m.value: timeline.zeros() for m in Mode})
    ended = EPOCH.format(f"coalesce(finished_at, {NOW})")
    for run in store.conn.execute(
            f"SELECT *, {EPOCH.format('started_at')} AS b, {ended} AS f FROM runs"):
        if run["started_at"] is None or (until and run["started_at"] >= until) or (
                since and run["finished_at"] is not None and run["finished_at"] < since) or (
                period.workflow and run["workflow"] != period.workflow):
            continue
        if run["pool"] == "foreground":
            use.foreground_runs += 1
            continue
        use.runs[run["mode"]] += 1
        timeline.spread(use.busy_s[run["mode"]], run["b"], run["f"])
    left = f"coalesce(claimed_at, started_at, finished_at, {NOW})"
    for run in store.conn.execute(f"SELECT *, {left} AS left_at, {EPOCH.format('enqueued_at')}"
                                  f" AS e, {EPOCH.format(left)} AS l FROM runs"):
        if (until and run["enqueued_at"] >= until) or (since and run["left_at"] < since) or (
                period.workflow and run["workflow"] != period.workflow):
            continue
        timeline.spread(use.queued_s[run["mode"]], run["e"], run["l"])
    # SQLite records no host: every run that held a worker ran on this machine.
    use.nodes = {local_host(): use.node()} if any(use.runs.values()) else {}
    return use


def python_earliest_start(store: Store, period: Period) -> float | None:
    starts = [r["started_at"] for r in all_runs(store)
              if in_period(r, period) and r["started_at"] is not None]
    if not starts:
        return None
    return store.conn.execute(f"SELECT {EPOCH.format('?')}", (min(starts),)).fetchone()[0]


@pytest.mark.parametrize("buckets", [1, 7, 24])
@pytest.mark.parametrize("period", PERIODS)
def test_pools_report_matches_python(history, period, buckets):
    first = accounting.earliest_start(history, period)
    assert first == python_earliest_start(history, period)
    # A fixed end in the past: runs not finished yet end `now`, beyond it, on both sides.
    end = (period.until or T0 + timedelta(days=10)).timestamp()
    start = period.since.timestamp() if period.since else (
        first if first is not None else end - 3600)
    timeline = Timeline(start, end, buckets)
    depth = {m.value: 0 for m in Mode}
    got = pools_report(accounting.pool_use(history, period, timeline), WORKERS, depth,
                       timeline, {})
    want = pools_report(python_pool_use(history, period, timeline), WORKERS, depth,
                        timeline, {})
    assert got == want


def test_a_run_across_slices_is_shared_out(tmp_path):
    with Store.open(tmp_path / "home") as store:
        rows = [r for r in varied_runs(50) if r[6] == "succeeded"][:1]
        begin = T0 + timedelta(hours=1)
        row = list(rows[0])
        row[2], row[7:11] = "eco", [to_iso(begin)] * 3 + [to_iso(begin + timedelta(hours=5))]
        row[18] = "eco"
        insert_runs(store, COLUMNS, [tuple(row)])
        timeline = Timeline(T0.timestamp(), (T0 + timedelta(hours=8)).timestamp(), 8)
        use = accounting.pool_use(store, Period(None, None), timeline)
    assert [round(s) for s in use.busy_s["eco"]] == [0, 3600, 3600, 3600, 3600, 3600, 0, 0]
    assert use.runs["eco"] == 1


def test_migration_3_indexes_an_existing_history(tmp_path, monkeypatch):
    from easyflow_cli.storage import store as store_module

    rows = [r for r in varied_runs(40) if r[6] == "succeeded"]
    with monkeypatch.context() as patch:
        patch.setattr(store_module, "MIGRATIONS", store_module.MIGRATIONS[:2])
        with Store.open(tmp_path / "home") as old:
            insert_runs(old, COLUMNS, rows)
            assert old.schema_version == 2
    with Store.open(tmp_path / "home") as store:
        assert store.schema_version == len(store_module.MIGRATIONS)  # 3 and later
        got = accounting.cost_sums(store, Period(None, None), "day")
        assert sum(r["runs"] for r in got) == len(rows)
        assert sum(s["runs"] for s in accounting.latency_stats(
            store, Period(None, None), QUANTILES).values()) == len(rows)


@pytest.mark.parametrize("zone", ["Atlantic/Azores", "America/Santiago", "Australia/Lord_Howe",
                                  "Europe/Berlin", "Asia/Kathmandu"])
def test_local_days_across_dst_changes(tmp_path, zone):
    """Runs every 20 minutes across a year's DST changes (Azores and Santiago change at
    midnight, so a local day may begin at 00:00 UTC or at no midnight at all; Lord Howe moves
    by half an hour), counted on the local day each finished in."""
    rows, ends = [], []
    for start in (datetime(2026, 3, 26, tzinfo=UTC), datetime(2026, 4, 2, tzinfo=UTC),
                  datetime(2026, 9, 3, tzinfo=UTC), datetime(2026, 10, 1, tzinfo=UTC),
                  datetime(2026, 10, 22, tzinfo=UTC)):
        ends += [start + timedelta(minutes=20 * n) for n in range(5 * 24 * 3)]
    for end in ends:
        rows.append(("wf", "manual", "eco", "manual", "normal", 1, "succeeded", to_iso(end),
                     to_iso(end), to_iso(end), to_iso(end), 1.0, 0.5, 0.0, None, 0.0, 0,
                     None, "eco"))
    with Store.open(tmp_path / "home") as store:
        insert_runs(store, COLUMNS, rows)
        got = {r["grp"]: r["runs"] for r in
               accounting.cost_sums(store, Period(None, None), "day", ZoneInfo(zone))}
    expected: dict[str, int] = {}
    for end in ends:
        day = end.astimezone(ZoneInfo(zone)).date().isoformat()
        expected[day] = expected.get(day, 0) + 1
    assert got == expected


def test_the_span_of_local_days_reads_only_the_ends_of_an_index(tmp_path):
    with Store.open(tmp_path) as store:
        plan = [row[3] for row in store.conn.execute(
            f"EXPLAIN QUERY PLAN {accounting.FINISH_RANGE_SQL}")]
    assert [step for step in plan if step.startswith("SCAN runs")] == []
    assert sum(step.startswith("SEARCH runs USING COVERING INDEX") for step in plan) == 2
