"""Queueing manual runs for `run --now`: planned first (nothing written), then committed.

No Rich here: `run --now --no-wait` needs none of it.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from easyflow_cli.cli.common import parse_deadline
from easyflow_cli.cli.output import print_json, print_line, say
from easyflow_cli.core.model import Mode, Trigger
from easyflow_cli.core.timeutil import utcnow
from easyflow_cli.storage.queue import QueuePolicy, enqueue_run, plan_run, typical_duration

if TYPE_CHECKING:
    from easyflow_cli.core.config import Config
    from easyflow_cli.core.spec import WorkflowSpec
    from easyflow_cli.storage.store import Store


def plan_manual_run(store: Store, spec: WorkflowSpec, config: Config, *, mode: Mode | None,
                    deadline: str | None, now: datetime | None = None) -> dict[str, Any]:
    """The row for a run a user asked for now (nothing is written)."""
    moment = now or utcnow()
    return plan_run(
        spec, trigger=Trigger.MANUAL, now=moment,
        policy=QueuePolicy(config.promote_within, config.off_peak), override=mode,
        deadline=parse_deadline(deadline, moment) if deadline is not None else None,
        typical_duration=typical_duration(store, spec.name),
    )


def plan_manual_runs(store: Store, specs: Sequence[WorkflowSpec], count: int, config: Config,
                     *, mode: Mode | None, deadline: str | None) -> list[dict[str, Any]]:
    """`count` rows for each workflow, in order. Runs of one workflow asked for at the same
    moment are planned alike, so each workflow is planned once."""
    moment = utcnow()
    rows = []
    for spec in specs:
        row = plan_manual_run(store, spec, config, mode=mode, deadline=deadline, now=moment)
        rows.extend([row] * count)
    return rows


def enqueue_manual_run(store: Store, name: str, row: dict[str, Any]) -> dict[str, Any]:
    """Commit the planned run and say so on stderr; the stored record."""
    record = enqueue_run(store, row)
    say(f"run {record['id']}: {name} in {record['mode']} mode ({record['mode_reason']})")
    return record


def print_queued(record: dict[str, Any], as_json: bool) -> None:
    """What `--no-wait` prints: the run id, or with `--json` the queued record."""
    if as_json:
        print_json(record)
    else:
        print_line(record["id"])
