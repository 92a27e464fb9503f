"""What `run --now` says when the run it queued waits for cheaper hours: when it will start,
what it will cost, and what running it now instead would cost (the seed's "Run now: $0.10 ·
Run overnight: $0.04", at the moment it matters)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from easyflow_cli.cli.output import say, short_time
from easyflow_cli.core.costs import exact
from easyflow_cli.core.durations import format_duration
from easyflow_cli.core.model import Mode, Run
from easyflow_cli.core.timeutil import to_iso, utcnow

if TYPE_CHECKING:
    from easyflow_cli.core.config import Config
    from easyflow_cli.core.spec import WorkflowSpec
    from easyflow_cli.storage.backend import Backend


@dataclass(frozen=True)
class Wait:
    """A queued run that starts later (or runs `run_id` to `last_id` of one workflow, queued
    together): when, and the quoted cost of one against real-time's now."""

    run_id: int
    workflow: str
    start: datetime
    cost: float
    real_time_cost: float
    currency: str
    last_id: int | None = None

    def as_json(self) -> dict[str, Any]:
        return {"currency": self.currency, "cost": exact(self.cost),
                "real_time_cost": exact(self.real_time_cost)}


def wait_of(store: Backend, config: Config, spec: WorkflowSpec, run: Run,
            now: datetime | None = None) -> Wait | None:
    """The run's wait, or None when it may start at once (most runs: nothing is priced)."""
    moment = now or utcnow()
    if run.not_before is None or run.not_before <= moment:
        return None
    from easyflow_cli.cli.loaded_series import loaded_tariff
    from easyflow_cli.reporting.accounting import workflow_quotes

    quotes = workflow_quotes(store, config, spec, moment, (run.mode, Mode.REAL_TIME),
                             starts={run.mode: run.not_before}, tariff=loaded_tariff(config))
    return Wait(run.id, spec.name, run.not_before, quotes[run.mode].cost,
                quotes[Mode.REAL_TIME].cost, config.costs.currency)


def explain(wait: Wait, now: datetime | None = None) -> None:
    """Two lines of talk on stderr: when it starts, and the two prices."""
    from easyflow_cli.cli.money import money_column

    then, at_once = money_column([wait.cost, wait.real_time_cost], wait.currency)[0]
    if wait.last_id is None or wait.last_id == wait.run_id:
        say(f"run {wait.run_id} waits for off-peak hours: it starts {starts(wait.start, now)}")
        say(f"Run then: {then} · Run now: {at_once} "
            f"(easyflow run {wait.workflow} --now --mode real-time)")
        return
    say(f"runs {wait.run_id}-{wait.last_id} wait for off-peak hours: they start "
        f"{starts(wait.start, now)}")
    say(f"Run then: {then} each · Run now: {at_once} each "
        f"(easyflow run {wait.workflow} --now --mode real-time)")


def starts(start: datetime, now: datetime | None = None) -> str:
    """`2026-12-02 22:00:00 CET, in 10h12m`."""
    left = (start - (now or utcnow())).total_seconds()
    whole_minutes = round(left / 60) * 60 if left >= 60 else round(left)
    return f"{short_time(to_iso(start))}, in {format_duration(max(whole_minutes, 1))}"
