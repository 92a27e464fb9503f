"""The coordinator's notification delivery: the daemon's `Deliveries` (its channels, back-off
and give-up, its rate-limited warnings), on a connection to the cluster's database that holds
the outbox (`pg_deliveries.open_outbox`: one deliverer at a time, across a takeover too).

Runs end on workers, which write their events with their ends and announce them; the
coordinator wakes this thread when it hears one (`EventWakeups`). A worker builds a run's rule
from the workflow it ran, so a row may name a workflow added after the coordinator read the
workflows: its rule is read from the database then, rather than given up as unconfigured.
"""

from __future__ import annotations

from easyflow_cli.core.config import Config
from easyflow_cli.core.notify import NoticeBook, NoticeRule
from easyflow_cli.runtime.clock import Clock
from easyflow_cli.runtime.cluster.execution import notice_book
from easyflow_cli.runtime.daemon.deliveries import Deliveries, OpenStore, Sender
from easyflow_cli.runtime.notify_channels import send
from easyflow_cli.storage.backend import Backend
from easyflow_cli.storage.outbox import Delivery


class ClusterDeliveries(Deliveries):
    def __init__(self, open_store: OpenStore, clock: Clock, book: NoticeBook, config: Config,
                 sender: Sender = send) -> None:
        super().__init__(open_store, clock, book, sender)
        self.config = config  # replaced on reload, with the book

    def rule(self, store: Backend, book: NoticeBook, delivery: Delivery) -> NoticeRule | None:
        rule = book.rule(delivery.workflow)
        if rule is None or delivery.channel not in rule.channels:
            self.book = book = notice_book(self.config, store.all_workflows())
            rule = book.rule(delivery.workflow)
        return rule
