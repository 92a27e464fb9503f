"""Real PostgreSQL and Redis servers for the tests of the cluster backend, one of each per test
process (pytest-xdist runs three), started on first use and stopped by their pid.

Each lives in a temporary directory, listens on 127.0.0.1 at a free port, and is tuned for
throwaway data (no fsync, no snapshots). PostgreSQL refuses to run as root, so as root it runs
as the `postgres` user, created when missing.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

POSTGRES_DIRS = ("/usr/local/bin", "/usr/lib/postgresql/15/bin")
POSTGRES_USER = "postgres"
START_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 30.0
# A port found free may be taken by another process before the server binds it.
START_ATTEMPTS = 3


PR_SET_PDEATHSIG = 1


class ServerUnavailable(Exception):
    """The server cannot be started here; the tests that need it are skipped with this reason."""


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def find_program(name: str, extra_dirs: tuple[str, ...] = ()) -> str:
    found = shutil.which(name) or next(
        (str(Path(d) / name) for d in extra_dirs if (Path(d) / name).is_file()), None)
    if found is None:
        raise ServerUnavailable(f"{name} is not installed (looked on PATH and in "
                                f"{', '.join(extra_dirs) or 'no other directory'})")
    return found


def wait_until_ready(port: int, process: subprocess.Popen, log: Path, ready: str) -> None:
    """Until the server listens and its log says `ready` (PostgreSQL listens before it has
    finished starting up, and refuses connections meanwhile)."""
    deadline = time.monotonic() + START_TIMEOUT_S
    before = log.stat().st_size if log.exists() else 0  # a failed attempt's lines
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise ServerUnavailable(f"the server exited ({process.returncode}): "
                                    f"{log.read_text(errors='replace')[-500:]}")
        if ready in log.read_text(errors="replace")[before:]:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port),
                                                                        0.2):
                return
        time.sleep(0.05)
    raise ServerUnavailable(f"the server was not ready on port {port} within "
                            f"{START_TIMEOUT_S:.0f} s")


def dying_with_us(sig: int) -> functools.partial:
    """Popen's `preexec_fn` that has the kernel send the server `sig` when the test process
    dies, even by SIGKILL, so that no server outlives the tests (it runs after the switch to
    the server's user, which would clear it)."""
    return functools.partial(ctypes.CDLL(None, use_errno=True).prctl, PR_SET_PDEATHSIG, sig)


def stop(process: subprocess.Popen, sig: int) -> None:
    """Stop a server by its pid: `sig` first, SIGKILL if it does not go in time."""
    if process.poll() is not None:
        return
    os.kill(process.pid, sig)
    try:
        process.wait(STOP_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        os.kill(process.pid, signal.SIGKILL)
        process.wait()


@dataclass
class Account:
    """Who a server runs as: ourselves, or `postgres` when we are root."""

    uid: int
    gid: int

    @classmethod
    def for_postgres(cls) -> Account:
        if os.geteuid() != 0:
            return cls(os.getuid(), os.getgid())
        try:
            entry = pwd.getpwnam(POSTGRES_USER)
        except KeyError:
            subprocess.run(["useradd", "--system", "--no-create-home", POSTGRES_USER],
                           check=True, capture_output=True)
            entry = pwd.getpwnam(POSTGRES_USER)
        return cls(entry.pw_uid, entry.pw_gid)

    def run_as(self) -> dict:
        """Popen's arguments that start a program as this account."""
        if self.uid == os.getuid():
            return {}
        return {"user": self.uid, "group": self.gid, "extra_groups": []}


class PostgresServer:
    """A PostgreSQL server of our own: `initdb` into a temporary directory, then `postgres`
    itself (not `pg_ctl`), so the process we started is the one we stop."""

    def __init__(self) -> None:
        self.initdb = find_program("initdb", POSTGRES_DIRS)
        self.postgres = find_program("postgres", POSTGRES_DIRS)
        self.account = Account.for_postgres()
        self.root = Path(tempfile.mkdtemp(prefix="easyflow-pg-"))
        os.chown(self.root, self.account.uid, self.account.gid)
        self.data = self.root / "data"
        self.log = self.root / "server.log"
        self.process: subprocess.Popen | None = None
        self.port = 0

    def start(self) -> None:
        made = subprocess.run(
            [self.initdb, "-D", str(self.data), "-U", POSTGRES_USER, "--auth=trust",
             "--no-sync", "-E", "UTF8", "--locale=C"],
            capture_output=True, text=True, **self.account.run_as())
        if made.returncode:
            raise ServerUnavailable(f"initdb failed: {made.stderr.strip()[-500:]}")
        for attempt in range(START_ATTEMPTS):
            try:
                self._serve(free_port())
                return
            except ServerUnavailable:
                if attempt == START_ATTEMPTS - 1:
                    raise

    def _serve(self, port: int) -> None:
        with open(self.log, "ab") as log:
            # Throwaway data: durability off, few connections, no socket file.
            self.process = subprocess.Popen(
                [self.postgres, "-D", str(self.data), "-p", str(port), "-h", "127.0.0.1",
                 "-k", "", "-c", "fsync=off", "-c", "synchronous_commit=off",
                 "-c", "full_page_writes=off", "-c", "max_connections=60",
                 "-c", "shared_buffers=16MB"],
                stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                preexec_fn=dying_with_us(signal.SIGQUIT),  # PostgreSQL's immediate shutdown
                **self.account.run_as())
        try:
            wait_until_ready(port, self.process, self.log, "ready to accept connections")
        except ServerUnavailable:
            stop(self.process, signal.SIGKILL)
            raise
        self.port = port

    def url(self, database: str = "postgres", **options: str) -> str:
        query = "&".join(f"{k}={v}" for k, v in options.items())
        return (f"postgresql://{POSTGRES_USER}@127.0.0.1:{self.port}/{database}"
                + (f"?{query}" if query else ""))

    def stop(self) -> None:
        if self.process is not None:
            stop(self.process, signal.SIGINT)  # PostgreSQL's fast shutdown
        shutil.rmtree(self.root, ignore_errors=True)


class RedisServer:
    """A Redis server of our own, in memory only (no RDB snapshots, no append-only file)."""

    def __init__(self) -> None:
        self.program = find_program("redis-server")
        self.root = Path(tempfile.mkdtemp(prefix="easyflow-redis-"))
        self.log = self.root / "server.log"
        self.process: subprocess.Popen | None = None
        self.port = 0

    def start(self) -> None:
        for attempt in range(START_ATTEMPTS):
            port = free_port()
            with open(self.log, "ab") as log:
                self.process = subprocess.Popen(
                    [self.program, "--port", str(port), "--bind", "127.0.0.1",
                     "--save", "", "--appendonly", "no", "--dir", str(self.root),
                     "--daemonize", "no"],
                    stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                    preexec_fn=dying_with_us(signal.SIGTERM))
            try:
                wait_until_ready(port, self.process, self.log, "Ready to accept connections")
                self.port = port
                return
            except ServerUnavailable:
                stop(self.process, signal.SIGKILL)
                if attempt == START_ATTEMPTS - 1:
                    raise

    def url(self, db: int = 0) -> str:
        return f"redis://127.0.0.1:{self.port}/{db}"

    def stop(self) -> None:
        if self.process is not None:
            stop(self.process, signal.SIGTERM)
        shutil.rmtree(self.root, ignore_errors=True)


@contextlib.contextmanager
def running(server: PostgresServer | RedisServer) -> Iterator[PostgresServer | RedisServer]:
    try:
        server.start()
        yield server
    finally:
        server.stop()
