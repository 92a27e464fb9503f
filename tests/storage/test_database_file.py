"""Only a missing database file makes a new database; anything else not ours is refused."""

from __future__ import annotations

import os
import sqlite3
import stat
import threading
from pathlib import Path

import pytest

from easyflow_cli.core.trust import UntrustedPath
from easyflow_cli.storage.database_file import APPLICATION_ID, DatabaseRefused
from easyflow_cli.storage.store import MIGRATIONS, Store


def make_sqlite(path: Path, *statements: str) -> None:
    conn = sqlite3.connect(path)
    for statement in statements:
        conn.execute(statement)
    conn.commit()
    conn.close()


def test_a_missing_file_becomes_a_new_private_easyflow_database(tmp_path):
    path = tmp_path / "easyflow.db"
    with Store(path) as store:
        assert store.schema_version == len(MIGRATIONS)
        assert store.conn.execute("PRAGMA application_id").fetchone()[0] == APPLICATION_ID
        assert store.conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert sorted(p.name for p in tmp_path.iterdir()) == ["easyflow.db"]


def test_an_existing_database_without_the_mark_is_still_ours(tmp_path):
    """Databases made before the application id was set: their schema says they are ours."""
    path = tmp_path / "easyflow.db"
    with Store(path) as store:
        store.conn.execute("PRAGMA application_id = 0")
    with Store(path) as store:
        assert store.schema_version == len(MIGRATIONS)


def test_concurrent_first_opens_share_one_database(tmp_path):
    path = tmp_path / "easyflow.db"
    barrier = threading.Barrier(8)
    failures: list[BaseException] = []

    def open_it() -> None:
        barrier.wait()
        try:
            Store(path).close()
        except BaseException as exc:  # noqa: BLE001 - reported by the assertion below
            failures.append(exc)

    threads = [threading.Thread(target=open_it) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == []
    assert sorted(p.name for p in tmp_path.iterdir()) == ["easyflow.db"]


def test_an_empty_file_is_refused_not_taken_as_new(tmp_path):
    path = tmp_path / "easyflow.db"
    path.write_bytes(b"")
    with pytest.raises(DatabaseRefused, match=r"is empty \(0 bytes\)"):
        Store(path)
    assert path.read_bytes() == b""


def test_a_file_that_is_not_sqlite_is_refused(tmp_path):
    path = tmp_path / "easyflow.db"
    path.write_bytes(b"these are my notes, not a database\n" * 200)
    with pytest.raises(DatabaseRefused, match="not a readable easyflow database"):
        Store(path)


@pytest.mark.parametrize(("statements", "message"), [
    (["CREATE TABLE runs (id)"], "a SQLite file without easyflow's schema"),
    (["CREATE TABLE t (x)", "PRAGMA user_version = 2"], "schema 2 but no"),
    (["CREATE TABLE t (x)", "PRAGMA application_id = 1234"], "application id 0x4d2"),
], ids=["no-version", "version-without-tables", "another-application"])
def test_a_foreign_sqlite_file_is_refused(tmp_path, statements, message):
    path = tmp_path / "easyflow.db"
    make_sqlite(path, *statements)
    before = path.read_bytes()
    with pytest.raises(DatabaseRefused, match=message):
        Store(path)
    assert path.read_bytes() == before


def test_a_database_from_a_newer_easyflow_is_refused(tmp_path):
    path = tmp_path / "easyflow.db"
    with Store(path) as store:
        store.conn.execute(f"PRAGMA user_version = {len(MIGRATIONS) + 1}")
    with pytest.raises(DatabaseRefused, match=f"newer easyflow \\(schema {len(MIGRATIONS) + 1}"):
        Store(path)


@pytest.mark.parametrize("name", ["easyflow.db", "easyflow.db-wal", "easyflow.db-shm"])
def test_symbolic_links_in_the_database_s_place_are_refused(tmp_path, name):
    path = tmp_path / "easyflow.db"
    Store(path).close()
    target = tmp_path / "precious"
    target.write_bytes(b"keep me")
    (tmp_path / name).unlink(missing_ok=True)
    (tmp_path / name).symlink_to(target)
    with pytest.raises(UntrustedPath, match=f"{name} is a symbolic link"):
        Store(path)
    assert target.read_bytes() == b"keep me"


def damage(path: Path) -> None:
    """4 KiB of random bytes in the middle of the file."""
    size = path.stat().st_size
    with open(path, "r+b") as file:
        file.seek(size // 2 // 4096 * 4096)
        file.write(os.urandom(4096))


def test_random_bytes_mid_file_are_found_by_the_integrity_check(tmp_path):
    path = tmp_path / "easyflow.db"
    with Store(path) as store:
        store.conn.executemany(
            "INSERT INTO runs (workflow, trigger, mode, mode_reason, cost_priority,"
            " priority_rank, state, enqueued_at, error) VALUES ('w', 'manual', 'eco', 'manual',"
            " 'normal', 1, 'succeeded', '2026-01-01T00:00:00Z', ?)",
            [(f"error text {i} " * 8,) for i in range(3000)])
        store.check_integrity()
        store.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    damage(path)
    with Store(path) as store, pytest.raises(DatabaseRefused, match="is damaged"):
        store.check_integrity()
