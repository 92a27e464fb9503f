"""What runs were charged as they ended (`core/receipts.py`), in columns of the `runs` table
(`CHARGE_COLUMNS`, added by a migration in `store.py`): written inside `finish`'s transaction,
read for a run's receipt."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from datetime import datetime

from easyflow_cli.core.model import Mode
from easyflow_cli.core.receipts import Charges, Pricing
from easyflow_cli.core.timeutil import from_iso
from easyflow_cli.storage.run_queue import RunEnd, charged_ends

CHARGE_COLUMNS = ("tariff_cost", "tariff_baseline_cost", "tariff_source", "carbon_g",
                  "baseline_carbon_g", "carbon_source")
MAX_BOUND_IDS = 10_000  # as sqlite_queue.py binds at most


def record_charges(conn: sqlite3.Connection, pricing: Pricing, ends: Sequence[RunEnd]) -> None:
    """Charge the runs that just ended under the series loaded (in the caller's transaction)."""
    charged = charged_ends(pricing, ends, _submitted(conn, [end.run_id for end in ends]))
    conn.executemany(f"UPDATE runs SET {', '.join(f'{c} = ?' for c in CHARGE_COLUMNS)}"
                     " WHERE id = ?",
                     [(*(getattr(charges, c) for c in CHARGE_COLUMNS), run_id)
                      for run_id, charges in charged])


def _submitted(conn: sqlite3.Connection, ids: list[int]) -> dict[int, tuple[Mode, datetime]]:
    found = {}
    for start in range(0, len(ids), MAX_BOUND_IDS):
        chunk = ids[start:start + MAX_BOUND_IDS]
        marks = ", ".join("?" for _ in chunk)
        for run_id, mode, enqueued in conn.execute(
                f"SELECT id, mode, enqueued_at FROM runs WHERE id IN ({marks})", chunk):
            found[run_id] = (Mode(mode), from_iso(enqueued))
    return found


def charges(conn: sqlite3.Connection, run_id: int) -> Charges:
    row = conn.execute(f"SELECT {', '.join(CHARGE_COLUMNS)} FROM runs WHERE id = ?",
                       (run_id,)).fetchone()
    return Charges() if row is None else Charges(*row)
