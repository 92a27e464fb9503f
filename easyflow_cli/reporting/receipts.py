"""A finished run's receipt, as `runs show` prints it (`core/receipts.py` makes it)."""

from __future__ import annotations

from easyflow_cli.core.config import Config
from easyflow_cli.core.costs import Prices
from easyflow_cli.core.model import Run
from easyflow_cli.core.receipts import Receipt, receipt_of
from easyflow_cli.storage.dialect import ReportStore


def run_receipt(store: ReportStore, run: Run, config: Config) -> Receipt | None:
    """Its receipt under the configured prices and what it was charged as it ended; None for
    a run that has not ended, or ended without occupying a worker."""
    if run.duration_s is None or not run.state.finished:
        return None
    return receipt_of(run, store.queue.charges(run.id), Prices.from_config(config),
                      config.costs.watts_per_core)
