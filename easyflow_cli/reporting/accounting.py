"""Read-only aggregate queries over the runs table, for quotes and reports.

SQL does the heavy part, each report in one pass over a partial covering index (migration 3 in
`store.py`) that holds its groups, or its values in order, so that no query sorts or loads a
million runs; the price model in `costs.py` is applied to the sums, so a price change
re-prices history.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, tzinfo
from typing import Any

from easyflow_cli.core import sketch
from easyflow_cli.core.config import Config
from easyflow_cli.core.costs import ModeHistory, Quote, quote
from easyflow_cli.core.forecast import Forecast
from easyflow_cli.core.model import Mode, PoolName
from easyflow_cli.core.spec import WorkflowSpec
from easyflow_cli.core.stats import median, nearest_rank, percentile
from easyflow_cli.core.timeutil import from_iso, local_zone, to_iso
from easyflow_cli.reporting import rolled_up, summarized
from easyflow_cli.reporting.hosts import local_host
from easyflow_cli.reporting.local_days import (
    ALL_FIELDS,
    CHARGE_SUMS,
    ZERO,
    LocalDays,
    before_sql,
    sums_sql,
)
from easyflow_cli.reporting.timeline import Timeline
from easyflow_cli.storage.damaged_rows import check_modes
from easyflow_cli.storage.dialect import Dialect, ReportStore
from easyflow_cli.storage.learned_durations import learned_durations
from easyflow_cli.storage.store import CHARGED_SQL, LEFT_QUEUE_SQL, Store

FOREGROUND_SQL = f"'{PoolName.FOREGROUND.value}'"

# Two subqueries: each reads one end of the finish-time index, where min() and max() in one
# SELECT would scan all of it.
FINISH_RANGE_SQL = ("SELECT (SELECT min(finished_at) FROM runs),"
                    " (SELECT max(finished_at) FROM runs)")

GROUP_KEYS = ("mode", "workflow", "day")


def _group_key(dialect: Dialect, by: str) -> str:
    return dialect.day("finished_at") if by == "day" else by


def _group_by(dialect: Dialect, by: str) -> str:
    """By workflow in the column order of the index that holds it (runs_costs_workflow), so
    SQLite streams the groups off it; the others are sorted, over the runs the summaries leave
    (or, before the daemon has summarized a history, over that index's entries)."""
    return {"mode": "mode, off_peak", "workflow": "workflow, mode, off_peak",
            "day": f"mode, off_peak, {dialect.day('finished_at')}"}[by]


@dataclass(frozen=True)
class Period:
    since: datetime | None
    until: datetime | None
    workflow: str | None = None

    def rolled_up(self, zone: tzinfo) -> tuple[str, list[Any]]:
        """The rollups of pruned history the period holds (its whole local days)."""
        return rolled_up.days_where(self.since, self.until, self.workflow, zone)

    def detail(self, cover: summarized.Coverage) -> Iterator[tuple[str, str, list[Any]]]:
        """The period's runs left to the detail by the summaries' cover, a range of finish
        times at a time, each as the table to read (and how) and the WHERE clause: the whole
        period in one when nothing is summarized."""
        if summarized.whole(cover):
            yield "runs", *self.where()
            return
        # Each range lies inside the period: its bounds alone, for SQLite to range over the
        # index by (given the period's too, it may take the period's wider ones instead).
        where, args = self.where(bounded=False)
        for low, high in cover.detail:
            clause, bounds = summarized.detail_clause(low, high)
            # A few recent hours or edges of the period: by finish time, whatever the rest.
            yield summarized.BY_FINISH, f"{where} AND {clause}", [*args, *bounds]

    def where(self, bounded: bool = True) -> tuple[str, list[Any]]:
        """Finished runs that occupied a worker, finished inside the period (`bounded`: by
        its times too)."""
        clauses, args = ["duration_s IS NOT NULL"], []
        if bounded and self.since is not None:
            clauses.append("finished_at >= ?")
            args.append(to_iso(self.since))
        if bounded and self.until is not None:
            clauses.append("finished_at < ?")
            args.append(to_iso(self.until))
        if self.workflow:
            clauses.append("workflow = ?")
            args.append(self.workflow)
        return " AND ".join(clauses), args


def has_history(store: ReportStore, workflow: str) -> bool:
    """Runs of this workflow exist (it may since have been removed: history is kept)."""
    row = store.read("SELECT 1 FROM runs WHERE workflow = ? UNION ALL"
                     " SELECT 1 FROM run_rollups WHERE workflow = ? LIMIT 1", (workflow, workflow))
    return row.fetchone() is not None


def cost_sums(store: ReportStore, period: Period, by: str = "mode",
              zone: tzinfo | None = None) -> list[dict[str, Any]]:
    """Per (group, mode, off_peak): runs, worker seconds, CPU seconds, measured joules, of
    the runs in detail (their summarized hours off the summaries) and the rollups of pruned
    ones. Days are local days of `zone` (the machine's by default)."""
    zone = zone or local_zone()
    cover = summarized.coverage(store, period.since, period.until,
                                summarized.local_day_straddled(zone) if by == "day"
                                else lambda hour: False)
    rows = summarized.cost_sums(store, cover, by, period.workflow, zone)
    for table, where, args in period.detail(cover):
        rows = _added(rows, _detail_cost_sums(store, by, table, where, args, zone))
    check_modes(store, {row["mode"] for row in rows})
    if rolled_up.exist(store):
        rows = _with_rolled_up(rows, rolled_up.cost_sums(store, period.rolled_up(zone), by))
    return sorted(rows, key=lambda r: (r["grp"], r["mode"], bool(r["off_peak"])))


def _detail_cost_sums(store: ReportStore, by: str, table: str, where: str, args: list[Any],
                      zone: tzinfo) -> list[dict[str, Any]]:
    rows = _sums(store, by, table, where, args)
    days = _local_days(store, zone) if by == "day" and rows else None
    if days is not None:
        before = [{(r["grp"], r["mode"], r["off_peak"]): r for r in _sums(
                      store, by, table, f"{where} AND {before_sql(store.dialect, cut)}", args)}
                  for cut in days.cuts]
        rows = days.split(rows, before)
    return rows


def _added(rows: list[dict[str, Any]], more: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Rows of one group, mode and tariff (as stored) added up."""
    merged: dict[tuple, dict[str, Any]] = {}
    for row in [*rows, *more]:
        into = merged.setdefault((row["grp"], row["mode"], row["off_peak"]), {**row, **ZERO})
        for name in ALL_FIELDS:
            into[name] += row[name]
    return list(merged.values())


def _with_rolled_up(rows: list[dict[str, Any]], rolled: list[dict[str, Any]]
                    ) -> list[dict[str, Any]]:
    """Rows of one group, mode and tariff added up, whether from detail or rollups."""
    merged: dict[tuple, dict[str, Any]] = {}
    for row in [*rows, *rolled]:
        key = (row["grp"], row["mode"], bool(row["off_peak"]))
        into = merged.get(key)
        if into is None:
            merged[key] = dict(row)
        else:
            for field in ALL_FIELDS:
                into[field] += row[field]
    return list(merged.values())


def _sums(store: ReportStore, by: str, table: str, where: str, args: list[Any]
          ) -> list[dict[str, Any]]:
    """The sums of each group, with the charges of its runs that have some (zero if none)."""
    dialect = store.dialect
    group = f"{_group_key(dialect, by)} AS grp, mode, off_peak"
    rows = [ZERO | dict(r) for r in store.read(
        f"SELECT {group}, {sums_sql()} FROM {table} WHERE {where}"
        f" GROUP BY {_group_by(dialect, by)}", args)]
    # Named: left to itself, SQLite may step through every run of an index that leads with
    # the workflow, reading each one's row, rather than through the runs that have charges.
    charged = {(r["grp"], r["mode"], r["off_peak"]): r for r in store.read(
        f"SELECT {group}, {sums_sql(CHARGE_SUMS)}"
        f" FROM runs {dialect.indexed_by('runs_charges')} WHERE {where} AND {CHARGED_SQL}"
        f" GROUP BY {_group_by(dialect, by)}", args)}
    for row in rows:
        charges = charged.get((row["grp"], row["mode"], row["off_peak"]))
        if charges is not None:
            row.update({field: charges[field] for field in CHARGE_SUMS})
    return rows


def _local_days(store: ReportStore, zone: tzinfo) -> LocalDays | None:
    """The local days over every finished run's time; None when there are none."""
    first, last = store.read(FINISH_RANGE_SQL).fetchone()
    if first is None:
        return None
    return LocalDays.between(zone, from_iso(first), from_iso(last))


# Below this many runs of a mode in the period, reading their values and sorting them is
# quicker than stepping an index in value order past runs the filters leave out.
FETCH_ALL_BELOW = 50_000


def latency_stats(store: ReportStore, period: Period, quantiles: tuple[int, ...],
                  zone: tzinfo | None = None) -> dict[str, dict[str, Any]]:
    """Per mode: runs, deadlines met/missed, and the nearest-rank percentiles of queue wait
    and duration (`core.stats.nearest_rank`), each read at its rank off an index in value order
    rather than by loading every run: over summarized hours, the summaries' sketch buckets
    say which bucket holds the rank, and the index is read inside it. A mode with pruned runs
    in the period has its percentiles read off sketches instead (`core/sketch.py`: within its
    relative error)."""
    # The summaries keep values per mode, not per workflow: one workflow's runs in detail.
    cover = (summarized.Coverage.none(period.since, period.until) if period.workflow
             else summarized.coverage(store, period.since, period.until))
    if summarized.whole(cover) or not isinstance(store, Store):
        stats = _detail_latency(store, period, quantiles)
    else:
        stats = _summarized_latency(store, period, cover, quantiles)
    if rolled_up.exist(store):
        rolled = rolled_up.latency(store, period.rolled_up(zone or local_zone()))
        for mode, pruned in rolled.items():
            detail = _value_buckets(store, period, cover, mode)
            stats[mode] = _with_pruned(quantiles, detail, stats.get(mode), pruned)
    return stats


def _with_pruned(quantiles: tuple[int, ...], detail_sketches: dict[str, sketch.Sketch],
                 detail: dict[str, Any] | None, pruned: dict[str, Any]) -> dict[str, Any]:
    """A mode's latency over detail and rollups: counts added, percentiles off the sketches
    of both."""
    stats = {key: pruned[key] + (detail[key] if detail else 0)
             for key in ("runs", "deadlines_met", "deadlines_missed")}
    for column in ("queue_wait_s", "duration_s"):
        merged = sketch.merge(dict(detail_sketches[column]), pruned[column])
        stats[column] = {q: sketch.quantile(merged, q) for q in quantiles}
    return stats


def _value_buckets(store: ReportStore, period: Period, cover: summarized.Coverage,
                   mode: str) -> dict[str, sketch.Sketch]:
    """Per column, the sketch of a mode's values in the period: the summaries' for the
    covered hours, the detail's for the rest."""
    found = {}
    for column in ("queue_wait_s", "duration_s"):
        buckets = ({} if summarized.whole(cover)
                   else summarized.value_buckets(store, cover, mode, column))
        for table, where, args in period.detail(cover):
            sketch.merge(buckets, _detail_sketch(store, f"FROM {table} WHERE {where} AND mode = ?"
                                                 f" AND {column} IS NOT NULL GROUP BY 1",
                                                 [*args, mode], column))
        found[column] = buckets
    return found


def _summarized_latency(store: Store, period: Period, cover: summarized.Coverage,
                        quantiles: tuple[int, ...]) -> dict[str, dict[str, Any]]:
    counts = summarized.latency_counts(store, cover)
    for table, where, args in period.detail(cover):
        for mode, *more in store.read(
            f"SELECT mode, count(*), count(queue_wait_s), count(CASE WHEN deadline_met THEN 1"
            f" END), count(CASE WHEN NOT deadline_met THEN 1 END) FROM {table} WHERE {where}"
            " GROUP BY mode", args,
        ):
            counts[mode] = tuple(a + b for a, b in zip(counts.get(mode, (0, 0, 0, 0)), more,
                                                       strict=True))
    check_modes(store, set(counts))
    stats = {}
    for mode, (runs, _, met, missed) in counts.items():
        if not runs:
            continue
        buckets = _value_buckets(store, period, cover, mode)
        stats[mode] = {"runs": runs, "deadlines_met": met, "deadlines_missed": missed,
                       **{column: _bucketed_percentiles(store, period, mode, column,
                                                        buckets[column], quantiles)
                          for column in ("queue_wait_s", "duration_s")}}
    return stats


VALUE_INDEXES = {"queue_wait_s": "runs_waits", "duration_s": "runs_durations"}


def _bucketed_percentiles(store: Store, period: Period, mode: str, column: str,
                          buckets: sketch.Sketch, quantiles: tuple[int, ...]
                          ) -> dict[int, float | None]:
    """Each percentile exactly: the bucket holding its rank found by counting, then the value
    read at its rank among the bucket's, off the index in value order."""
    count = sum(buckets.values())
    if not count:
        return dict.fromkeys(quantiles)
    found: dict[int, float | None] = {}
    for q in quantiles:
        rank, below = nearest_rank(count, q), 0
        for bucket in sorted(buckets):
            if below + buckets[bucket] >= rank:
                found[q] = _in_bucket(store, period, mode, column, bucket, rank - below - 1)
                break
            below += buckets[bucket]
    return found


def _in_bucket(store: Store, period: Period, mode: str, column: str, bucket: int,
               offset: int) -> float:
    """The value at `offset` (0-based) in order among the period's values of a sketch bucket."""
    where, args = period.where()
    low, high = sketch.bounds_of(bucket)
    _bucket_function(store)
    return store.read(
        f"SELECT {column} FROM runs INDEXED BY {VALUE_INDEXES[column]} WHERE {where}"
        f" AND mode = ? AND {column} >= ? AND {column} < ? AND sketch_bucket({column}) = ?"
        f" ORDER BY {column} LIMIT 1 OFFSET ?",
        [*args, mode, low, high, bucket, offset]).fetchone()[0]


def _detail_sketch(store: ReportStore, runs: str, args: list[Any], column: str
                   ) -> sketch.Sketch:
    """Sketch bucket → runs of a column's values, over the runs `runs` (FROM ... GROUP BY 1)
    selects."""
    if isinstance(store, Store):  # SQLite calls back into Python for each value
        _bucket_function(store)
        return dict(store.read(f"SELECT sketch_bucket({column}), count(*) {runs}",
                               args).fetchall())
    buckets: sketch.Sketch = {}
    for value, count in store.read(f"SELECT {column}, count(*) {runs}", args):
        bucket = sketch.bucket_of(value)
        buckets[bucket] = buckets.get(bucket, 0) + count
    return buckets


def _bucket_function(store: Store) -> None:
    store.conn.create_function("sketch_bucket", 1, sketch.bucket_of, deterministic=True)


def _detail_latency(store: ReportStore, period: Period, quantiles: tuple[int, ...]
                    ) -> dict[str, dict[str, Any]]:
    where, args = period.where()
    stats = {}
    groups = store.read(
        "SELECT mode, count(*), count(queue_wait_s), count(CASE WHEN deadline_met THEN 1 END),"
        " count(CASE WHEN NOT deadline_met THEN 1 END)"
        f" FROM runs WHERE {where} GROUP BY mode", args,
    ).fetchall()
    check_modes(store, {group[0] for group in groups})
    for mode, runs, waited, met, missed in groups:
        # One workflow's runs are quickest found through the index that leads with it, even
        # though SQLite, preferring covering indexes, would step over every run of the mode.
        found = (f"{where} AND mode = ?", [*args, mode],
                 store.dialect.indexed_by("runs_costs_workflow") if period.workflow else "")
        stats[mode] = {
            "runs": runs, "deadlines_met": met, "deadlines_missed": missed,
            "queue_wait_s": _percentiles(store, "queue_wait_s", "runs_waits", waited,
                                         quantiles, *found),
            "duration_s": _percentiles(store, "duration_s", "runs_durations", runs,
                                       quantiles, *found),
        }
    return stats


def _percentiles(store: ReportStore, column: str, index: str, count: int,
                 quantiles: tuple[int, ...], where: str, args: list[Any],
                 few: str) -> dict[int, float | None]:
    where = f"{where} AND {column} IS NOT NULL"
    if not count:
        return dict.fromkeys(quantiles)
    if count < FETCH_ALL_BELOW:
        values = sorted(v for v, in store.read(
            f"SELECT {column} FROM runs {few} WHERE {where}", args))
        return {q: percentile(values, q) for q in quantiles}
    return {q: _ranked(store, column, index, where, args, nearest_rank(count, q), count)
            for q in quantiles}


def _ranked(store: ReportStore, column: str, index: str, where: str, args: list[Any], rank: int,
            count: int) -> float:
    """The rank-th smallest value (1-based) of the column among the runs `where` selects."""
    # Stepping over the index is what costs: come from whichever end is nearer (p95, p99 from
    # the top). Equal values are interchangeable, so the answer is the same either way.
    order, offset = ("ASC", rank - 1) if rank - 1 <= count - rank else ("DESC", count - rank)
    return store.read(
        f"SELECT {column} FROM runs {store.dialect.indexed_by(index)} WHERE {where}"
        f" ORDER BY {column} {order} LIMIT 1 OFFSET ?", [*args, offset]).fetchone()[0]


@dataclass
class NodeUse:
    """One machine's part of the runs still in detail (pruned history keeps no host): per
    mode, the runs that held a worker there and their busy seconds in the timeline."""

    runs: dict[str, int]
    busy_s: dict[str, float]


@dataclass
class PoolUse:
    """Per mode, over a timeline: runs that held a worker, and the seconds that runs spent
    busy and queued in each slice; foreground runs (no pool worker) are only counted. Per
    host (`runs.host`, set by the machine that ran a run; None where none was), its part."""

    runs: dict[str, int]
    busy_s: dict[str, list[float]]
    queued_s: dict[str, list[float]]
    foreground_runs: int = 0
    nodes: dict[str | None, NodeUse] = field(default_factory=dict)

    @classmethod
    def empty(cls, timeline: Timeline) -> PoolUse:
        modes = [m.value for m in Mode]
        return cls({m: 0 for m in modes}, {m: timeline.zeros() for m in modes},
                   {m: timeline.zeros() for m in modes})

    def node(self) -> NodeUse:
        return NodeUse(dict(self.runs), {mode: sum(s) for mode, s in self.busy_s.items()})


Picks = list[tuple[int, str | None, str | None]]  # slice, and the finish times it reads


def pool_use(store: ReportStore, period: Period, timeline: Timeline,
             zone: tzinfo | None = None) -> PoolUse:
    """Busy and queued seconds per slice for runs that overlap the period.

    Settled runs lying inside one slice are added up by SQL, slice by slice (runs picked by
    when they finished), off an index that holds their times as epoch seconds, or whole
    summarized hours at a time (`summarized.add_pool_use`, SQLite's store only); the rest
    (crossing a slice boundary, or not finished) are read and spread in Python. Both cut at
    the same floating-point bounds. Pruned runs come from their rollups, to the quarter hour."""
    use = PoolUse.empty(timeline)
    filters = _pool_filters(store.dialect, period)
    edges = _slice_edges(timeline, period)
    cover = summarized.coverage(store, period.since, period.until)
    if summarized.whole(cover):
        picks = [(index, low, high) for index, (low, high) in enumerate(edges)]
    else:
        into = summarized.PoolSeries(use.runs, use.busy_s, use.queued_s)
        picks = summarized.add_pool_use(store, cover, period.workflow, timeline, edges, into)
        use.foreground_runs += into.foreground_runs
    if isinstance(store, Store):
        # Busy and queued times are two passes over two indexes: on a second connection in a
        # thread (SQLite lets go of the GIL), they take one pass's wall time on two cores.
        with ThreadPoolExecutor(max_workers=1) as thread, Store(store.path) as other:
            queued = thread.submit(_add_queued, other, picks, timeline, filters, use)
            _add_busy(store, picks, timeline, filters, use)
            queued.result()
        use.nodes = {local_host(): use.node()} if any(use.runs.values()) else {}
    else:
        _add_queued(store, picks, timeline, filters, use)
        _add_busy(store, picks, timeline, filters, use)
        use.nodes = _nodes(store, picks, timeline, filters)
    if rolled_up.exist(store):
        _add_rolled_up(store, period, timeline, use, zone or local_zone())
    return use


def _nodes(store: ReportStore, picks: Picks, timeline: Timeline,
           filters: dict[str, Any]) -> dict[str | None, NodeUse]:
    """Each host's runs that held a worker, and their busy seconds, as `_add_busy` counts
    them over all hosts."""
    nodes = {}
    host = store.dialect.is_("host", ":host")
    for name, in store.read(f"SELECT DISTINCT host FROM runs WHERE {filters['busy']}"
                            f" AND {store.dialect.is_not('pool', FOREGROUND_SQL)}",
                            filters["args"]).fetchall():
        on_host = {**filters, "args": {**filters["args"], "host": name},
                   **{kind: f"{filters[kind]} AND {host}" for kind in ("busy", "settled_busy")}}
        use = PoolUse.empty(timeline)
        _add_busy(store, picks, timeline, on_host, use)
        if any(use.runs.values()):
            nodes[name] = use.node()
    return nodes


def _add_rolled_up(store: ReportStore, period: Period, timeline: Timeline, use: PoolUse,
                   zone: tzinfo) -> None:
    into = rolled_up.PoolSeries(use.runs, use.busy_s, use.queued_s)
    rolled_up.add_pool_use(store, (period.since, period.until, period.workflow), zone, timeline,
                           into)
    use.foreground_runs += into.foreground_runs


def _add_busy(store: ReportStore, picks: Picks, timeline: Timeline, filters: dict[str, Any],
              use: PoolUse) -> None:
    _each_slice(store, picks, timeline, filters, use, "settled_busy", _busy_slice)
    for mode, pool, begin, finish in _unfinished(store, "busy", filters):
        if pool == PoolName.FOREGROUND:
            use.foreground_runs += 1
            continue
        use.runs[mode] += 1
        timeline.spread(use.busy_s[mode], begin, finish)


def _add_queued(store: ReportStore, picks: Picks, timeline: Timeline,
                filters: dict[str, Any], use: PoolUse) -> None:
    _each_slice(store, picks, timeline, filters, use, "settled_queued", _queued_slice)
    for mode, enqueued, left in _unfinished(store, "queued", filters):
        timeline.spread(use.queued_s[mode], enqueued, left)


SliceAdder = Callable[[ReportStore, str, dict[str, Any], PoolUse, int, Timeline], None]


def _each_slice(store: ReportStore, picks: Picks, timeline: Timeline, filters: dict[str, Any],
                use: PoolUse, kind: str, add_slice: SliceAdder) -> None:
    """Add the settled runs of every mode, slice by slice (each reading the runs `picks`
    gives it), under the filter named `kind`."""
    for mode in use.runs:
        for index, low_iso, high_iso in picks:
            add_slice(store, filters[kind],
                      _slice_args(filters, timeline, mode, index, low_iso, high_iso),
                      use, index, timeline)


def _slice_args(filters: dict[str, Any], timeline: Timeline, mode: str, index: int,
                low_iso: str | None, high_iso: str | None) -> dict[str, Any]:
    low, high = timeline.bounds(index)
    return {**filters["args"], "mode": mode, "low": low, "high": high, "low_iso": low_iso,
            "high_iso": high_iso}


def _pool_filters(dialect: Dialect, period: Period) -> dict[str, Any]:
    """The period as SQL, with named args: for runs busy in it (by start and finish) and runs
    queued in it (by enqueue and leaving the queue), finished or not (`now` for the end).

    For finished runs the ends are plain columns: `--since` becomes the first slice's lower
    edge in `_slice_edges`, an index range (two lower bounds would leave SQLite to pick one)."""
    clauses: dict[str, list[str]] = {
        "busy": ["started_at IS NOT NULL"], "settled_busy": ["started_at IS NOT NULL"],
        "queued": [], "settled_queued": []}
    args: dict[str, Any] = {}
    if period.until is not None:
        for kind in clauses:
            clauses[kind].append(("started_at" if "busy" in kind else "enqueued_at") + " < :until")
        args["until"] = to_iso(period.until)
    if period.since is not None:
        clauses["busy"].append("(finished_at IS NULL OR finished_at >= :since)")
        clauses["queued"].append(f"coalesce({LEFT_QUEUE_SQL}, {dialect.now}) >= :since")
        args["since"] = to_iso(period.since)  # for finished runs, the first slice's lower edge
    if period.workflow:
        for kind in clauses:
            clauses[kind].append("workflow = :workflow")
        args["workflow"] = period.workflow
    return {"args": args,
            **{kind: " AND ".join(c or [dialect.true]) for kind, c in clauses.items()}}


def _slice_edges(timeline: Timeline, period: Period) -> list[tuple[str | None, str | None]]:
    """Text bounds close to each slice's, to pick runs by index range; any monotone choice
    is correct, since runs not inside their float slice are spread in Python."""
    cuts = [to_iso(datetime.fromtimestamp(timeline.bounds(i)[0], UTC))
            for i in range(1, timeline.buckets)]
    return list(zip([to_iso(period.since), *cuts], [*cuts, None], strict=True))


def _in_slice(dialect: Dialect, column: str, low_iso: str | None, high_iso: str | None) -> str:
    clauses = [f"{column} >= :low_iso"] if low_iso is not None else []
    if high_iso is not None:
        clauses.append(f"{column} < :high_iso")
    return " AND ".join(clauses or [dialect.true])


def _busy_slice(store: ReportStore, filters: str, args: dict[str, Any], use: PoolUse,
                index: int, timeline: Timeline) -> None:
    dialect = store.dialect
    began, ended = dialect.epoch("started_at"), dialect.epoch("finished_at")
    in_slice = _in_slice(dialect, "finished_at", args["low_iso"], args["high_iso"])
    where = f"finished_at IS NOT NULL AND mode = :mode AND {filters} AND {in_slice}"
    pooled = dialect.is_not("pool", FOREGROUND_SQL)
    inside = f"{pooled} AND {began} >= :low AND {ended} <= :high"
    runs_pools = dialect.indexed_by("runs_pools")
    runs, foreground, busy, simple = store.read(
        f"SELECT count(*), total({dialect.is_('pool', FOREGROUND_SQL)}),"
        f" total(CASE WHEN {inside} AND {ended} > {began} THEN {ended} - {began} END),"
        f" total({inside}) FROM runs {runs_pools} WHERE {where}", args).fetchone()
    mode = args["mode"]
    use.runs[mode] += runs - int(foreground)
    use.foreground_runs += int(foreground)
    use.busy_s[mode][index] += busy
    if runs - foreground - simple:
        for begin, finish in store.read(
            f"SELECT {began}, {ended} FROM runs {runs_pools} WHERE {where}"
            f" AND {pooled} AND NOT ({began} >= :low AND {ended} <= :high)", args,
        ):
            timeline.spread(use.busy_s[mode], begin, finish)


def _queued_slice(store: ReportStore, filters: str, args: dict[str, Any], use: PoolUse,
                  index: int, timeline: Timeline) -> None:
    # Picked by finish time, as busy time is (one index for both): a run that left the queue
    # before the period began is picked too when it finished in it, and adds nothing.
    dialect = store.dialect
    queued_at, left_queue = dialect.epoch("enqueued_at"), dialect.epoch(LEFT_QUEUE_SQL)
    in_slice = _in_slice(dialect, "finished_at", args["low_iso"], args["high_iso"])
    where = f"finished_at IS NOT NULL AND mode = :mode AND {filters} AND {in_slice}"
    inside = f"{queued_at} >= :low AND {left_queue} <= :high"
    runs_pools = dialect.indexed_by("runs_pools")
    runs, queued, simple = store.read(
        f"SELECT count(*), total(CASE WHEN {inside} AND {left_queue} > {queued_at}"
        f" THEN {left_queue} - {queued_at} END), total({inside})"
        f" FROM runs {runs_pools} WHERE {where}", args).fetchone()
    series = use.queued_s[args["mode"]]
    series[index] += queued
    if runs - simple:
        for enqueued, left in store.read(
            f"SELECT {queued_at}, {left_queue} FROM runs {runs_pools}"
            f" WHERE {where} AND NOT ({inside})", args,
        ):
            timeline.spread(series, enqueued, left)


def _unfinished(store: ReportStore, kind: str, filters: dict[str, Any]) -> list[tuple]:
    """Runs not finished yet (queued or running: few), with `now` as their end."""
    dialect = store.dialect
    if kind == "busy":
        columns = f"mode, pool, {dialect.epoch('started_at')}, {dialect.epoch(dialect.now)}"
    else:
        left = f"coalesce({LEFT_QUEUE_SQL}, {dialect.now})"
        columns = f"mode, {dialect.epoch('enqueued_at')}, {dialect.epoch(left)}"
    rows = store.read(
        f"SELECT {columns} FROM runs WHERE finished_at IS NULL AND {filters[kind]}",
        filters["args"]).fetchall()
    check_modes(store, {row[0] for row in rows})
    return rows


def earliest_start(store: ReportStore, period: Period) -> float | None:
    """The earliest start of runs in the period (epoch seconds), None if there are none;
    pruned runs counted too."""
    cover = summarized.coverage(store, period.since, period.until)
    first = summarized.first_start(store, cover, period.workflow)
    starts = [first] if first is not None else []
    dialect = store.dialect
    for table, where, args in period.detail(cover):
        # The whole period: off the pools index, which holds the columns it needs.
        table = table if cover.hours else f"runs {dialect.indexed_by('runs_pools')}"
        first = store.read(
            f"SELECT {dialect.epoch('min(started_at)')} FROM {table} WHERE {where}"
            " AND finished_at IS NOT NULL", args).fetchone()[0]
        starts += [first] if first is not None else []
    if rolled_up.exist(store):
        pruned = rolled_up.earliest_start(store, period.workflow)
        starts += [pruned] if pruned is not None else []
    return min(starts, default=None)


def workflow_history(store: ReportStore, workflow: str, sample: int = 50) -> dict[str, ModeHistory]:
    """Per mode: the workflow's recent finished runs (its last `sample` in each mode that ran
    to an end: succeeded, failed or timed out; cancelled runs say nothing about the work)."""
    by_mode: dict[str, list[tuple[float, float, bool]]] = {}
    for mode, duration, cpu, failed in store.read(
        "SELECT mode, duration_s, coalesce(cpu_user_s + cpu_system_s, 0), state != 'succeeded'"
        " FROM runs WHERE workflow = ? AND state IN ('succeeded', 'failed', 'timed_out')"
        " AND duration_s IS NOT NULL ORDER BY id DESC LIMIT ?", (workflow, sample * 3),
    ):
        samples = by_mode.setdefault(mode, [])
        if len(samples) < sample:
            samples.append((duration, cpu, bool(failed)))
    return {mode: ModeHistory(median(d for d, _, _ in s), median(c for _, c, _ in s), len(s),
                              sum(f for _, _, f in s))
            for mode, s in by_mode.items()}


def workflow_quotes(store: ReportStore, config: Config, spec: WorkflowSpec, now: datetime,
                    modes: Iterable[Mode] = tuple(Mode), *,
                    starts: Mapping[Mode, datetime] | None = None,
                    tariff: Forecast | None = None) -> dict[Mode, Quote]:
    """What a run of the workflow would cost and when it would start, in each of `modes`:
    at its start in `starts` (a queued run's planned one) where given, priced by `tariff`
    where one is loaded and covers it."""
    history = workflow_history(store, spec.name)
    starts = starts or {}
    return {mode: quote(config, spec, mode, now, history,
                        learned_durations(store.queue, spec.name, mode, config),
                        start=starts.get(mode), tariff=tariff)
            for mode in modes}
