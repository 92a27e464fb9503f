"""The daemon's watch on its database files, and what it does when one is deleted or replaced.

It records which database, -wal and -shm files its connection opened and, at each wake-up
that may act and at each quiet checkpoint, compares their paths with them (three lstat
calls). A file gone or replaced under it is a fault: the daemon stops taking work and drains,
while clients refuse to write into a log they would not share with it (`live_files.py`).

Recovery, at exit: what the daemon committed but had not yet copied back into the database
lives only in the log its connection still holds open. With the database file itself in
place, a full checkpoint through that connection copies it there; the daemon then exits with
`STORAGE_FAULT_EXIT` and its next start (systemd restarts it) opens the files afresh. With
the database deleted or replaced, the connection's whole view is saved beside it instead,
for an operator to put back (SQLite itself then leaves the files at the paths alone when the
connection closes: it checkpoints and deletes its log only for a database file still in place).
"""

from __future__ import annotations

import logging
import sqlite3
from datetime import datetime
from pathlib import Path

from easyflow_cli.storage.live_files import FilesInUse, file_id, files_in_use
from easyflow_cli.storage.store import Store

log = logging.getLogger("easyflow.daemon")

# EX_TEMPFAIL: a failure systemd's Restart=on-failure answers with a fresh start.
STORAGE_FAULT_EXIT = 75


class StorageWatch:
    def __init__(self, store: Store) -> None:
        self.store = store
        self.in_use = FilesInUse(files_in_use(store.path))
        self.fault: str | None = None
        self.recovered = False

    def newly_broken(self) -> str | None:
        """What happened, the first time a file in use is found deleted or replaced."""
        if self.fault is not None or self.in_use.intact():
            return None
        self.fault = "; ".join(self.in_use.replaced())
        return self.fault

    def recover(self, now: datetime) -> None:
        """Leave what the connection holds where it is found again (see the module's doc);
        once."""
        if self.recovered:
            return
        self.recovered = True
        path = self.store.path
        try:
            if path in self.in_use.paths and file_id(path) == self.in_use.paths[path]:
                self._copy_back(path)
            else:
                self._save_aside(path, now)
        except (sqlite3.Error, OSError) as exc:
            log.error("storage fault: could not save what the daemon holds: %s", exc)

    def _copy_back(self, path: Path) -> None:
        if self.store.checkpoint_all():
            log.error("storage fault: everything committed is copied back into %s; exiting "
                      "to start again on fresh files", path)
        else:
            log.error("storage fault: readers kept part of the log from being copied back "
                      "into %s; what they held is lost when the daemon exits", path)

    def _save_aside(self, path: Path, now: datetime) -> None:
        saved = path.with_name(f"{path.name}.saved-{now.strftime('%Y%m%dT%H%M%SZ')}")
        self.store.save_copy(saved)
        log.error("storage fault: the database this daemon had open is saved as %s; move it "
                  "to %s (with the daemon stopped) to carry on from it", saved, path)
