"""The database's files while they are open: do their paths still name the files in use?

SQLite coordinates the processes that share a database through its -wal and -shm files, found
by name. Delete them (or the database) while a connection holds them and the next process to
open the database makes fresh ones: it no longer sees what the holder committed but not yet
copied back (those pages live only in the deleted log), hands out the same ids again, and the
two write logs that diverge. Two guards close this:

- the process that holds the database for long (the daemon) records which files its
  connection has open and compares their paths with them (`replaced_files`);
- every other process refuses to open or write when others hold the database but it would not
  share their -shm (`unshared_log`): a missing -wal or -shm, or a -shm nobody else locks, is a
  log that diverges. Whose locks are where is read from /proc/locks, which needs no descriptor:
  closing one on a file SQLite has locked would drop SQLite's own locks.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

from easyflow_cli.core.errors import EasyflowError

LOG_SUFFIXES = ("-wal", "-shm")
# A process opening or closing the database holds its lock on the database a moment before
# (or after) the one on the -shm; a log that really diverges stays so.
SETTLE_TRIES = 5
SETTLE_PAUSE_S = 0.01


class StorageFault(EasyflowError):
    """The database's files are not the ones in use: writing now would lose what is written."""


@dataclass(frozen=True)
class FileId:
    device: int
    inode: int


def file_id(path: Path) -> FileId | None:
    """The file a path names now (not following a link); None when there is none."""
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        return None
    return FileId(info.st_dev, info.st_ino)


def companions(path: Path) -> list[Path]:
    """The database and its -wal and -shm files."""
    return [path, *(Path(f"{path}{suffix}") for suffix in LOG_SUFFIXES)]


def files_in_use(path: Path) -> dict[Path, FileId]:
    """The database's files this process has open (each as its path names it now).

    Taken right after the connection has read: then it has all three open."""
    held = _open_descriptors()
    ids = {name: file_id(name) for name in companions(path)}
    return {name: ident for name, ident in ids.items() if ident is not None and ident in held}


class FilesInUse:
    """The files in use, looked at through their paths: on the daemon's way to every dispatch,
    so no more than an lstat call and two comparisons of integers each."""

    def __init__(self, in_use: dict[Path, FileId]) -> None:
        self.paths = dict(in_use)
        self.checks = [(str(name), ident.device, ident.inode) for name, ident in in_use.items()]

    def intact(self) -> bool:
        try:
            for name, device, inode in self.checks:
                info = os.lstat(name)
                if info.st_ino != inode or info.st_dev != device:
                    return False
        except FileNotFoundError:
            return False
        return True

    def replaced(self) -> list[str]:
        """What happened to each file in use whose path no longer names it."""
        problems = []
        for name, ident in self.paths.items():
            now = file_id(name)
            if now != ident:
                problems.append(f"{name.name} was {'deleted' if now is None else 'replaced'}")
        return problems


def unshared_log(path: Path) -> str | None:
    """Why this process would not share the write-ahead log of the others that hold the
    database at `path`, or None (also when nobody else holds it)."""
    suspects: set[int] | None = None
    reason = None
    for attempt in range(SETTLE_TRIES):
        if attempt:
            time.sleep(SETTLE_PAUSE_S)
        reason, unsharing = _unsharing(path)
        suspects = unsharing if suspects is None else suspects & unsharing
        if not suspects:
            return None
    return reason


def refuse_unshared_log(path: Path) -> None:
    reason = unshared_log(path)
    if reason is not None:
        raise StorageFault(f"{reason}; refusing to use it, nothing was written (a "
                           "daemon notices this, stops taking work and starts again on "
                           "its files: `easyflow status` shows it)")


def refuse_replaced(in_use: FilesInUse) -> None:
    """Refuse to write when a file this process uses is no longer the one its path names."""
    if not in_use.intact():
        raise StorageFault(f"{'; '.join(in_use.replaced())} while this process had the "
                           "database open; refusing to use it, nothing was written (a daemon "
                           "notices this, stops taking work and starts again on its files: "
                           "`easyflow status` shows it)")


def _unsharing(path: Path) -> tuple[str | None, set[int]]:
    """Which other processes hold the database but not its -shm, and what is wrong then."""
    database = file_id(path)
    if database is None:
        return None, set()
    locks = _lock_holders()
    me = {os.getpid()}
    holders = locks.get(database, set()) - me
    if not holders:
        return None, set()
    wal, shm = (Path(f"{path}{suffix}") for suffix in LOG_SUFFIXES)
    shm_id = file_id(shm)
    for name, ident in ((wal, file_id(wal)), (shm, shm_id)):
        if ident is None:
            return f"{name} is missing while another process has the database open", holders
    unsharing = holders - locks.get(shm_id, set()) if shm_id is not None else holders
    reason = (f"{shm} is not the one every process that has the database open uses (it was "
              "deleted or replaced)")
    return reason, unsharing


def _lock_holders() -> dict[FileId, set[int]]:
    """Which processes hold a POSIX lock on which file, from /proc/locks."""
    holders: dict[FileId, set[int]] = {}
    try:
        with open("/proc/locks") as table:
            lines = table.readlines()
    except OSError:
        return holders
    for line in lines:
        fields = line.split()
        for index, field in enumerate(fields):
            if field.count(":") == 2 and index > 0:
                holders.setdefault(_lock_file(field), set()).add(_pid(fields[index - 1]))
                break
    return holders


def _lock_file(field: str) -> FileId:
    major, minor, inode = field.split(":")
    return FileId(os.makedev(int(major, 16), int(minor, 16)), int(inode))


def _pid(field: str) -> int:
    try:
        return int(field)
    except ValueError:
        return -1


def _open_descriptors() -> set[FileId]:
    held = set()
    for name in os.listdir("/proc/self/fd"):
        try:
            info = os.fstat(int(name))
        except OSError:
            continue
        held.add(FileId(info.st_dev, info.st_ino))
    return held
