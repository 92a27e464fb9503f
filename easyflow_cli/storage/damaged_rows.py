"""Runs changed by other means than easyflow: a stored value that is none of those it writes.

Reading such a row must give one line naming the run and the field, not a traceback, and the
daemon must go on serving. The checks cost nothing on the way of a good row: a conversion that
failed is looked into afterwards (`damage`), and the reports, which read modes by the group,
look for a run only when a group's mode is unknown (`check_modes`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from enum import Enum
from typing import TYPE_CHECKING, Any

from easyflow_cli.core.errors import DamagedRow
from easyflow_cli.core.model import CostPriority, Mode, ModeReason, PoolName, RunState, Trigger
from easyflow_cli.core.timeutil import from_iso

if TYPE_CHECKING:
    from easyflow_cli.storage.dialect import ReportStore

ENUM_COLUMNS: dict[str, type[Enum]] = {
    "trigger": Trigger, "mode": Mode, "mode_reason": ModeReason,
    "cost_priority": CostPriority, "state": RunState, "pool": PoolName,
}
KNOWN = {column: {member.value for member in kind} for column, kind in ENUM_COLUMNS.items()}
MODES = KNOWN["mode"]
TIME_COLUMNS = ("deadline", "enqueued_at", "not_before", "promote_at", "claimed_at",
                "started_at", "finished_at")


def damage(run_id: int, values: Mapping[str, Any]) -> DamagedRow | None:
    """The first of `values` (column → stored value) that easyflow never writes, if any."""
    for column, value in values.items():
        if column in KNOWN and value is not None and value not in KNOWN[column]:
            return DamagedRow(run_id, column, value)
        if column in TIME_COLUMNS and not _is_time(value):
            return DamagedRow(run_id, column, value)
    return None


def _is_time(value: Any) -> bool:
    try:
        from_iso(value)
    except (ValueError, TypeError):
        return False
    return True


def check_modes(store: ReportStore, modes: Iterable[str]) -> None:
    """Refuse, naming a run that has it, a mode found by a report that no run should have."""
    for mode in modes:
        if mode not in MODES:
            row = store.read("SELECT id FROM runs WHERE mode = ? LIMIT 1", (mode,)).fetchone()
            raise DamagedRow(row[0] if row else None, "mode", mode)
