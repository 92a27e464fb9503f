"""`easyflow worker` refuses, in one line and exit 2, what it cannot serve: no cluster, no
broker, a pool that is not a mode's."""

import pytest
from typer.testing import CliRunner

from easyflow_cli.cli.main import app

pytest.importorskip("celery", reason="the [cluster] extra is not installed")


def test_a_worker_needs_a_cluster(home):
    result = CliRunner().invoke(app, ["worker", "--pool", "eco"])
    assert result.exit_code == 2
    assert "a worker needs a cluster: set [cluster] database_url and broker_url" in result.output


def test_a_worker_needs_a_broker(home, monkeypatch):
    monkeypatch.setenv("EASYFLOW_DATABASE_URL", "postgresql://easyflow@db.invalid/easyflow")
    result = CliRunner().invoke(app, ["worker", "--pool", "real-time"])
    assert result.exit_code == 2
    assert "a worker needs a broker: set [cluster] broker_url, or EASYFLOW_BROKER_URL" in (
        result.output)


def test_a_worker_serves_a_modes_pool_only(home):
    result = CliRunner().invoke(app, ["worker", "--pool", "foreground"])
    assert result.exit_code == 2 and "--pool" in result.output
