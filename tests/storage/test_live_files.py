"""The database's files while open: a deleted or replaced -wal, -shm or database is noticed by
the process that holds them, and no other process writes into a log it would not share."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from easyflow_cli.core.model import Trigger
from easyflow_cli.core.planning import QueuePolicy, plan_run
from easyflow_cli.core.spec import parse_workflow_text
from easyflow_cli.core.timeutil import utcnow
from easyflow_cli.storage.live_files import (
    FilesInUse,
    StorageFault,
    files_in_use,
    unshared_log,
)
from easyflow_cli.storage.store import Store

# Another process that holds the database open, as a daemon does, until its stdin closes.
HOLD = ("import sqlite3, sys; c = sqlite3.connect(sys.argv[1]);"
        " c.execute('SELECT count(*) FROM runs').fetchone(); print('ready', flush=True);"
        " sys.stdin.read()")


@pytest.fixture
def path(home) -> Path:
    with Store.open(home) as store:
        spec = parse_workflow_text('name = "w"\n[[steps]]\nrun = ["true"]\n')
        store.save_workflows([spec], utcnow())
        return store.path


def hold(path: Path) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-c", HOLD, str(path)], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline() == "ready\n"
    return proc


def release(proc: subprocess.Popen) -> None:
    proc.stdin.close()
    proc.wait(10)


@pytest.fixture
def holder(path) -> Iterator[subprocess.Popen]:
    proc = hold(path)
    yield proc
    release(proc)


def enqueue_one(store: Store) -> None:
    planned = plan_run(store.get_workflow("w"), trigger=Trigger.MANUAL, now=utcnow(),
                       policy=QueuePolicy())
    store.queue.enqueue([planned])


def delete_log(path: Path) -> None:
    for suffix in ("-wal", "-shm"):
        os.unlink(f"{path}{suffix}")


def test_the_holder_sees_each_file_it_uses_deleted_or_replaced(path):
    with Store.open(path.parent, watched=True) as store:
        in_use = FilesInUse(files_in_use(store.path))
        assert sorted(name.name for name in in_use.paths) == [
            "easyflow.db", "easyflow.db-shm", "easyflow.db-wal"]
        assert in_use.intact() and in_use.replaced() == []
        os.unlink(f"{path}-wal")
        assert not in_use.intact()
        path.rename(path.with_name("elsewhere.db"))
        path.write_bytes(b"")
        assert not in_use.intact()
        assert in_use.replaced() == ["easyflow.db was replaced", "easyflow.db-wal was deleted"]


def test_a_log_shared_with_the_holder_is_used(path, holder):
    assert unshared_log(path) is None
    with Store.open(path.parent) as store:
        enqueue_one(store)


@pytest.mark.parametrize("deleted", [("-wal", "-shm"), ("-wal",), ("-shm",)])
def test_with_the_log_deleted_under_a_holder_no_fresh_one_is_made(path, holder, deleted):
    for suffix in deleted:
        os.unlink(f"{path}{suffix}")
    with pytest.raises(StorageFault, match=rf"easyflow.db{deleted[0]} is missing while another "
                                           r"process has the database open; refusing to use it"):
        Store.open(path.parent)
    assert not any(Path(f"{path}{suffix}").exists() for suffix in deleted)


def test_a_fresh_log_beside_the_holders_is_never_written(path, holder):
    with Store.open(path.parent) as store:
        delete_log(path)
        other = hold(path)  # another program opens the database: a fresh -wal and -shm
        try:
            assert unshared_log(path) == (f"{path}-shm is not the one every process that has "
                                          "the database open uses (it was deleted or replaced)")
            with pytest.raises(StorageFault, match="nothing was written"):
                enqueue_one(store)
        finally:
            release(other)


def test_without_another_holder_a_missing_log_is_nothing_to_refuse(path):
    assert not Path(f"{path}-wal").exists()  # the last connection to close removed it
    assert unshared_log(path) is None
    with Store.open(path.parent) as store:
        enqueue_one(store)
