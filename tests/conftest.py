import itertools
import os
import shutil
import sys
import textwrap
from pathlib import Path

import pytest
from hypothesis import settings

from easyflow_cli.storage.store import Store

# The harnesses' asserts explain a failure only if pytest rewrites them, which it does for the
# modules registered before their first import (a test module may import them before it names
# them in `pytest_plugins`).
pytest.register_assert_rewrite("tests.daemon_harness", "tests.cluster_harness")

# Hypothesis' default 200 ms deadline per example is wall-clock luck when three test processes
# share two cores: a property fails on what it checks, never on how long an example took.
settings.register_profile("easyflow", deadline=None)
settings.load_profile("easyflow")

REPO = Path(__file__).resolve().parent.parent
EXAMPLES = REPO / "config" / "workflows"


@pytest.fixture
def home(tmp_path, monkeypatch):
    """A private EASYFLOW_HOME, with the daemon config looked up nowhere else."""
    path = tmp_path / "home"
    monkeypatch.setenv("EASYFLOW_HOME", str(path))
    monkeypatch.delenv("EASYFLOW_CONFIG", raising=False)
    for name in ("REALTIME_MAX_WORKERS", "BALANCED_MAX_WORKERS", "ECO_MAX_WORKERS",
                 "STATE_DIRECTORY", "NOTIFY_SOCKET", "EASYFLOW_DATABASE_URL",
                 "EASYFLOW_BROKER_URL"):
        monkeypatch.delenv(name, raising=False)
    return path


@pytest.fixture
def store(home):
    with Store.open(home) as opened:
        yield opened


@pytest.fixture
def write(tmp_path):
    """Write a dedented file under tmp_path/wf and return its path."""

    def _write(name: str, text: str) -> Path:
        path = tmp_path / "wf" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text).lstrip())
        return path

    return _write


@pytest.fixture
def examples(tmp_path):
    """A copy of the shipped example workflows."""
    target = tmp_path / "examples"
    shutil.copytree(EXAMPLES, target)
    return target


def easyflow_command() -> list[str]:
    """The installed console script if it is on PATH next to this Python, else `-m`."""
    script = Path(sys.executable).parent / "easyflow"
    if script.exists():
        return [str(script)]
    return [sys.executable, "-m", "easyflow_cli"]


def subprocess_env(home: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("EASYFLOW_")}
    env.update(EASYFLOW_HOME=str(home), **extra)
    return env


@pytest.fixture(scope="session")
def postgres_server():
    """This test process's PostgreSQL server (started on first use, stopped at the end); the
    tests that need it are skipped, with the reason, where none can be started."""
    from tests.servers import PostgresServer, ServerUnavailable, running

    try:
        server = PostgresServer()
    except ServerUnavailable as exc:
        pytest.skip(f"no PostgreSQL server: {exc}")
    try:
        with running(server) as started:
            yield started
    except ServerUnavailable as exc:
        pytest.skip(f"no PostgreSQL server: {exc}")


@pytest.fixture
def database_url(postgres_server, request) -> str:
    """The URL of an empty schema of its own on this process's PostgreSQL server: a schema
    costs milliseconds to make, a database a checkpoint."""
    psycopg = pytest.importorskip("psycopg", reason="the [cluster] extra is not installed")
    schema = f"t{next(_schemas)}"
    with psycopg.connect(postgres_server.url(), autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
    return postgres_server.url(options=f"-csearch_path%3D{schema}")


_schemas = itertools.count(1)


@pytest.fixture(scope="session")
def redis_server():
    """This test process's Redis server, started on first use, or the tests are skipped."""
    from tests.servers import RedisServer, ServerUnavailable, running

    try:
        server = RedisServer()
    except ServerUnavailable as exc:
        pytest.skip(f"no Redis server: {exc}")
    try:
        with running(server) as started:
            yield started
    except ServerUnavailable as exc:
        pytest.skip(f"no Redis server: {exc}")


# Outside tests/e2e, the files whose tests also wait seconds each on real processes (the
# benchmark, the docs' shell examples, fresh interpreters' imports).
SLOW_FILES = {"test_bench.py", "test_docs.py", "test_startup.py"}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The slow tests first: started early, they overlap the quick ones, which then fill the
    test processes' last minutes instead of one long test running alone at the end."""
    items.sort(key=lambda item: not (item.get_closest_marker("e2e") or "e2e" in item.path.parts
                                     or item.path.name in SLOW_FILES))
