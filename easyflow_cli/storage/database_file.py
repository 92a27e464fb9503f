"""The database file: only a missing file makes a new database, and only whole; anything else
in its place that is not an easyflow database is refused with one line saying what it is.

SQLite takes an empty file for a new database and opens any SQLite file it is given, so a
truncated database would silently start over and a swapped-in one would be believed. A new
database is therefore built aside and linked into place: an empty file there is never ours.
"""

from __future__ import annotations

import os
import sqlite3
import stat
from contextlib import suppress
from pathlib import Path

from easyflow_cli.core.errors import EasyflowError
from easyflow_cli.core.trust import UntrustedPath

# "EFLW": marks a database easyflow created, before its first migration has run.
APPLICATION_ID = 0x45464C57
TABLES = ("workflows", "schedules", "runs")
COMPANIONS = ("-wal", "-shm", "-journal")


class DatabaseRefused(EasyflowError):
    """The file where the database should be is not one easyflow can use."""


def open_database(path: Path, timeout: float, known_version: int) -> sqlite3.Connection:
    """A connection to the easyflow database at `path`, created if (and only if) it is missing.

    Neither the database nor its -wal and -shm files may be symbolic links.
    """
    refuse_links(path)
    size = _size(path)
    if size is None:
        _create(path, timeout)
    elif size == 0:
        raise DatabaseRefused(f"database {path} is empty (0 bytes), so it is not the easyflow "
                              "database that was there; restore it from a backup, or remove it "
                              "to start a new one")
    conn = _connect(path, timeout, "rw")
    try:
        _check_is_ours(conn, path, known_version)
    except BaseException:
        conn.close()
        raise
    return conn


def refuse_links(path: Path) -> None:
    for name in (path, *(Path(f"{path}{suffix}") for suffix in COMPANIONS)):
        try:
            info = os.lstat(name)
        except FileNotFoundError:
            continue
        if stat.S_ISLNK(info.st_mode):
            raise UntrustedPath(f"{name} is a symbolic link; easyflow does not follow links "
                                "in its state directory (remove it)")


def check_integrity(conn: sqlite3.Connection, path: Path) -> None:
    """Read every page (SQLite's quick_check); a damaged database is refused, naming the
    first problem found."""
    try:
        first = conn.execute("PRAGMA quick_check(1)").fetchone()[0]
    except sqlite3.DatabaseError as exc:
        first = str(exc)
    if first != "ok":
        first = first.replace("*** in database main ***\n", "").replace("\n", "; ")
        raise DatabaseRefused(f"database {path} is damaged ({first}); restore it from a backup "
                              "or move it aside to start a new one")


def _size(path: Path) -> int | None:
    try:
        return os.stat(path).st_size
    except FileNotFoundError:
        return None


def _connect(path: Path, timeout: float, mode: str) -> sqlite3.Connection:
    # `mode=rw` never creates: a file deleted since we looked is an error, not a new database.
    uri = f"file:{_uri_path(path)}?mode={mode}&nofollow=1"
    old_umask = os.umask(0o077)
    try:
        return sqlite3.connect(uri, uri=True, isolation_level=None, timeout=timeout,
                               check_same_thread=False)
    except sqlite3.OperationalError as exc:
        raise DatabaseRefused(f"cannot open database {path}: {exc}") from None
    finally:
        os.umask(old_umask)


def _uri_path(path: Path) -> str:
    text = os.path.abspath(path)
    for char, escaped in (("%", "%25"), ("?", "%3f"), ("#", "%23")):
        text = text.replace(char, escaped)
    return text


def _create(path: Path, timeout: float) -> None:
    """A new, empty easyflow database at `path`: marked as ours and in WAL mode in a file of
    its own, then linked into place. If another process got there first, theirs is kept."""
    aside = path.with_name(f"{path.name}.new-{os.getpid()}-{os.urandom(4).hex()}")
    try:
        conn = _connect(aside, timeout, "rwc")
        try:
            conn.execute(f"PRAGMA application_id = {APPLICATION_ID}")
            conn.execute("PRAGMA journal_mode = WAL")
        finally:
            conn.close()
        with suppress(FileExistsError):
            os.link(aside, path)
    finally:
        aside.unlink(missing_ok=True)


def _check_is_ours(conn: sqlite3.Connection, path: Path, known_version: int) -> None:
    try:
        application_id, version, tables = _header(conn)
    except sqlite3.DatabaseError as exc:
        raise DatabaseRefused(f"{path} is not a readable easyflow database ({exc}); restore "
                              "it from a backup, or move it aside to start a new one") from None
    if application_id not in (0, APPLICATION_ID):
        raise DatabaseRefused(f"{path} is not an easyflow database (another program's SQLite "
                              f"file, application id {application_id:#x}); move it aside")
    if version > known_version:
        raise DatabaseRefused(f"database {path} was written by a newer easyflow (schema "
                              f"{version}; this one knows up to {known_version}); upgrade "
                              "easyflow")
    if version == 0 and application_id != APPLICATION_ID:
        raise DatabaseRefused(f"{path} is not an easyflow database (a SQLite file without "
                              "easyflow's schema); move it aside")
    if version and tables < len(TABLES):
        raise DatabaseRefused(f"{path} is not an easyflow database (schema {version} but no "
                              f"{'/'.join(TABLES)} tables); move it aside")


def _header(conn: sqlite3.Connection) -> tuple[int, int, int]:
    """Application id, schema version and how many of our tables there are, in one query."""
    return conn.execute(
        "SELECT (SELECT * FROM pragma_application_id), (SELECT * FROM pragma_user_version),"
        " (SELECT count(*) FROM sqlite_master WHERE type = 'table'"
        f" AND name IN ({', '.join('?' * len(TABLES))}))", TABLES).fetchone()
