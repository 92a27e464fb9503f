"""Small helpers the command modules share: opening the store, parsing CLI values."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from easyflow_cli.core.durations import looks_like_duration, parse_duration
from easyflow_cli.core.errors import BadInput, shown
from easyflow_cli.core.timeutil import parse_time

if TYPE_CHECKING:
    from easyflow_cli.storage.store import Store


def open_store() -> Store:
    # Imported here, not at the top: `easyflow --help` must not pay for the store's imports.
    from easyflow_cli.storage.store import Store

    return Store.open()


def check_workflow(store: Store, workflow: str | None) -> None:
    """A registered workflow, or one that has since been removed but has runs to show; else
    NotFound (exit 2), as for every unknown name."""
    from easyflow_cli.reporting.accounting import has_history

    if workflow and not has_history(store, workflow):
        store.get_workflow(workflow)


def parse_deadline(text: str, now: datetime, option: str = "--deadline") -> datetime:
    """A duration from now (`30m`) or an ISO-8601 time (`2026-12-01T09:00`, local if no offset)."""
    if looks_like_duration(text):
        try:
            return now + timedelta(seconds=parse_duration(text))
        except ValueError as exc:
            raise BadInput(f"{option}: {exc}") from None
    try:
        return parse_time(text)
    except ValueError:
        raise BadInput(f"{option}: {shown(text)} is neither a duration like '30m' nor an ISO-8601 "
                       "time like 2026-12-01T09:00") from None
