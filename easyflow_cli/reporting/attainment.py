"""User satisfaction: how often runs kept their mode's objective (`core/objectives.py`), per
mode and per workflow, and the workflows and modes that kept it least.

Counted over the runs `report latency` counts (those that occupied a worker, finished in the
period): all of them by workflow and mode, then only those that missed, each kind of miss a
range of an index, so that a history whose objectives are kept costs little more than its
count. Pruned runs are counted from their days' rollups: their waits are kept as a sketch, so
how many started in time is read off it, and an eco day's runs without a deadline are taken to
have started in time in the share its sketch shows (a real-time or balanced run that started
late but met its deadline is estimated the same way, starting in time and meeting a deadline
taken as independent).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import tzinfo
from typing import Any

from easyflow_cli.core.model import Mode
from easyflow_cli.core.objectives import Objectives
from easyflow_cli.core.sketch import count_at_most
from easyflow_cli.core.timeutil import local_zone
from easyflow_cli.reporting import rolled_up, summarized
from easyflow_cli.reporting.accounting import Period
from easyflow_cli.storage.damaged_rows import check_modes
from easyflow_cli.storage.dialect import ReportStore

# How many of the (workflow, mode) pairs that kept their objective least the report names.
WORST = 5

# The runs of a mode that did not keep its objective, each part a range of an index, so that
# only misses are read: those that waited longer than the limit, or never started, without a
# deadline met (real-time, balanced) or without a deadline (eco); and eco runs that missed
# their deadline, off an index of those alone.
# (The dialect's spellings of an index to read, true and false, go where `{d.…}` stands.)
LATE_SQL = ("SELECT workflow, count(*) FROM runs {runs_waits} WHERE {where}"
            " AND mode = ? AND {wait} AND {deadline} GROUP BY workflow")
WAITS = ("queue_wait_s > ?", "queue_wait_s IS NULL")
NOT_EXCUSED = {Mode.REAL_TIME: "deadline_met IS NOT {d.true}",
               Mode.BALANCED: "deadline_met IS NOT {d.true}", Mode.ECO: "deadline_met IS NULL"}
DEADLINE_MISSED_SQL = ("SELECT workflow, count(*) FROM runs {runs_deadline_missed}"
                       " WHERE {where} AND mode = 'eco' AND deadline_met = {d.false}"
                       " GROUP BY workflow")


@dataclass
class Kept:
    runs: int = 0
    met: float = 0.0  # an estimate, for pruned runs

    @property
    def missed(self) -> int:
        return self.runs - round(self.met)

    def as_json(self) -> dict[str, Any]:
        pct = round(100 * self.met / self.runs, 2) if self.runs else None
        return {"runs": self.runs, "met": round(self.met), "missed": self.missed,
                "attainment_pct": pct}


def kept_counts(store: ReportStore, period: Period, objectives: Objectives,
                zone: tzinfo | None = None) -> dict[tuple[str, Mode], Kept]:
    """Per (workflow, mode) with an objective: the runs of the period and how many kept it."""
    counts: dict[tuple[str, Mode], Kept] = {}
    for workflow, mode, runs, met in _detail(store, period, objectives):
        _add(counts, workflow, Mode(mode), runs, met)
    if rolled_up.exist(store):
        for row in rolled_up.waits(store, period.rolled_up(zone or local_zone())):
            mode = Mode(row["mode"])
            _add(counts, row["workflow"], mode, row["settled"], _pruned_met(row, mode, objectives))
    return {key: kept for key, kept in counts.items() if objectives.measured(key[1])}


def _add(counts: dict[tuple[str, Mode], Kept], workflow: str, mode: Mode, runs: int,
         met: float) -> None:
    kept = counts.setdefault((workflow, mode), Kept())
    kept.runs += runs
    kept.met += met


def _detail(store: ReportStore, period: Period, objectives: Objectives) -> list[tuple]:
    """(workflow, mode, runs, kept) of the runs in detail: all of them counted off the hourly
    summaries where they cover the period, the rest grouped off the index of costs, which
    holds them by workflow and mode; the misses (few where objectives are kept) apart."""
    where, args = period.where()
    runs = _run_counts(store, period)
    check_modes(store, {mode for _, mode in runs})
    missed = _missed(store, where, args, objectives)
    return [(workflow, mode, count, count - missed.get((workflow, mode), 0))
            for (workflow, mode), count in runs.items()]


def _run_counts(store: ReportStore, period: Period) -> Counter[tuple[str, str]]:
    cover = summarized.coverage(store, period.since, period.until)
    runs = summarized.run_counts(store, cover, period.workflow)
    for table, where, args in period.detail(cover):
        if not cover.hours:
            table = f"runs {store.dialect.indexed_by('runs_costs_workflow')}"
        for workflow, mode, count in store.read(
            f"SELECT workflow, mode, count(*) FROM {table} WHERE {where}"
            " GROUP BY workflow, mode", args,
        ):
            runs[workflow, mode] += count
    return runs


def _missed(store: ReportStore, where: str, args: list[Any],
            objectives: Objectives) -> Counter[tuple[str, str]]:
    missed: Counter[tuple[str, str]] = Counter()
    dialect = store.dialect
    for mode in Mode:
        limit = objectives.max_delay if mode is Mode.ECO else objectives.start_within[mode]
        for wait in WAITS if limit is not None else ():
            sql = LATE_SQL.format(where=where, wait=wait, runs_waits=dialect.indexed_by(
                "runs_waits"), deadline=NOT_EXCUSED[mode].format(d=dialect))
            bound = [limit] if "?" in wait else []
            for workflow, count in store.read(sql, [*args, mode.value, *bound]):
                missed[workflow, mode.value] += count
    deadline_missed = DEADLINE_MISSED_SQL.format(
        where=where, d=dialect,
        runs_deadline_missed=dialect.indexed_by("runs_deadline_missed"))
    for workflow, count in store.read(deadline_missed, args):
        missed[workflow, Mode.ECO.value] += count
    return missed


def _pruned_met(row: dict[str, Any], mode: Mode, objectives: Objectives) -> float:
    """Runs of one rollup that kept the objective, as far as its counts and sketch tell."""
    sketch, settled = row["wait_sketch"], row["settled"]
    if mode is Mode.ECO:
        without_deadline = settled - row["deadlines_met"] - row["deadlines_missed"]
        waited = sum(sketch.values())
        share = count_at_most(sketch, objectives.max_delay) / waited if waited else 0.0
        return row["deadlines_met"] + without_deadline * share
    within = objectives.start_within[mode]
    waited = sum(sketch.values())
    if within is None or not waited or not settled:
        return 0.0
    # Started in time, or met its deadline: taken as independent, as the day's counts allow.
    in_time, met = count_at_most(sketch, within) / waited, row["deadlines_met"] / settled
    return settled * (in_time + met - in_time * met)


def attainment_report(counts: dict[tuple[str, Mode], Kept],
                      objectives: Objectives) -> dict[str, Any]:
    """Per mode, per workflow and the worst (workflow, mode) pairs: runs, met, missed, %."""
    by_mode = {mode: Kept() for mode in Mode if objectives.measured(mode)}
    by_workflow: dict[str, Kept] = {}
    for (workflow, mode), kept in sorted(counts.items()):
        for total in (by_mode[mode], by_workflow.setdefault(workflow, Kept())):
            total.runs += kept.runs
            total.met += kept.met
    worst = sorted((pair for pair in counts.items() if pair[1].missed > 0),
                   key=lambda pair: (pair[1].met / pair[1].runs, -pair[1].missed, pair[0]))
    return {
        "objectives": objectives.as_json(),
        "by_mode": {mode.value: kept.as_json() for mode, kept in by_mode.items()},
        "by_workflow": {name: kept.as_json() for name, kept in by_workflow.items()},
        "worst": [{"workflow": workflow, "mode": mode.value, **kept.as_json()}
                  for (workflow, mode), kept in worst[:WORST]],
    }
