"""`easyflow notify test`: a test event through each of a workflow's channels, now, from the
command line (not the outbox), and what each channel answered."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from easyflow_cli.core.config import Config
from easyflow_cli.core.errors import BadInput
from easyflow_cli.core.model import CostPriority, Mode, ModeReason, Run, RunState, Trigger
from easyflow_cli.core.notify import Channel, Event, NoticeRule, rule_of
from easyflow_cli.core.notify_events import event_record, summary
from easyflow_cli.runtime.notify_channels import DeliveryFailed, send
from easyflow_cli.storage.backend import Backend
from easyflow_cli.storage.sqlite_outbox import host_name


@dataclass(frozen=True)
class ChannelAnswer:
    channel: Channel
    ok: bool
    answer: str

    def to_json(self) -> dict[str, object]:
        return {"channel": self.channel.value, "ok": self.ok, "answer": self.answer}


def try_channels(store: Backend, config: Config, workflow: str,
                  now: datetime) -> list[ChannelAnswer]:
    """Send a `test` event (its latest run as the sample) through every channel it has."""
    spec = store.get_workflow(workflow)
    rule = rule_of(spec.notify, config.notify, spec.retries)
    if rule is None:
        raise BadInput(f"workflow {workflow} has no notification channel: give it a [notify] "
                       "table with command, webhook or email (or set defaults in easyflow.toml)")
    latest = store.queue.latest(workflow=workflow, limit=1)
    sample = latest[0] if latest else _sample_run(workflow, now)
    return [_try(channel, rule, sample) for channel in rule.channels]


def _try(channel: Channel, rule: NoticeRule, run: Run) -> ChannelAnswer:
    host = host_name()
    event = event_record(run, Event.TEST, uuid.uuid4().hex, host=host,
                         summary=summary(Event.TEST, run, host=host))
    try:
        return ChannelAnswer(channel, True, send(channel, rule.spec, event))
    except DeliveryFailed as exc:
        return ChannelAnswer(channel, False, str(exc))


def _sample_run(workflow: str, now: datetime) -> Run:
    """A workflow that never ran: a run record of the right shape, id 0, nothing measured."""
    return Run(0, workflow, Trigger.MANUAL, Mode.REAL_TIME, ModeReason.MANUAL,
               CostPriority.NORMAL, None, RunState.SUCCEEDED, now)
