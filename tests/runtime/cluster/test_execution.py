"""What a pool process records of a run it executed (`RunExecution`), in-process on a real
PostgreSQL: a run whose cancel was asked is over for good, even when it failed first."""

from datetime import UTC, datetime

import pytest

from easyflow_cli.core.config import load_config
from easyflow_cli.core.model import Outcome, RunState
from easyflow_cli.core.spec import parse_workflow_text
from tests.cluster_helpers import dispatch_by_hand, queue_runs

pytest.importorskip("psycopg", reason="the [cluster] extra is not installed")
pytest.importorskip("celery", reason="the [cluster] extra is not installed")
from easyflow_cli.runtime.cluster.execution import (  # noqa: E402
    PoolProcess,
    RunExecution,
    WorkerIdentity,
)
from easyflow_cli.storage.pg_store import PgStore  # noqa: E402
from easyflow_cli.storage.pg_workers import PgWorkers  # noqa: E402

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
IDENTITY = WorkerIdentity("node-a:1", "node-a", "token")


@pytest.mark.parametrize("cancel_asked", [False, True])
def test_a_failed_run_is_retried_unless_its_cancel_was_asked(database_url, home,
                                                              cancel_asked):
    spec = parse_workflow_text('name = "w"\nretries = 2\n[[steps]]\nrun = ["false"]\n')
    process = PoolProcess(database_url, load_config(None), IDENTITY)
    with PgStore(database_url) as pg:
        pg.save_workflows([spec], NOW)
        [run_id] = queue_runs(pg, "w", 1, NOW)
        dispatch = dispatch_by_hand(pg, [run_id], NOW)
        try:
            [run] = process.workers().accept(dispatch.token, [run_id], worker=IDENTITY.name,
                                             host=IDENTITY.host, pid=1, now=NOW)
            if cancel_asked:  # asked while its step was failing on its own
                PgWorkers(pg).request_cancel([run_id], now=NOW)
            RunExecution(process, run)._record(Outcome(RunState.FAILED, exit_code=1), spec)
        finally:
            process.close()
        assert pg.queue.get(run_id).state is RunState.FAILED
        assert (pg.queue.retried_as(run_id) is None) is cancel_asked
