import pytest

pytest.importorskip("celery")

from easyflow_cli.core.model import Mode, PoolName  # noqa: E402
from easyflow_cli.runtime.cluster.engine import (  # noqa: E402
    DispatchMessage,
    make_app,
    queue_name,
)
from easyflow_cli.storage.cluster_queue import Dispatch  # noqa: E402


def test_a_dispatch_travels_as_json_kwargs_and_comes_back_the_same():
    dispatch = Dispatch("tok", Mode.ECO, PoolName.ECO, (4, 5, 6), "batch-1")
    message = DispatchMessage.of(dispatch)
    assert DispatchMessage.from_kwargs(message.to_kwargs()) == message


@pytest.mark.parametrize("kwargs", [
    {}, {"token": "t", "mode": "turbo", "pool": "eco", "run_ids": [1]},
    {"token": "t", "mode": "eco", "pool": "eco", "run_ids": ["1"]},
    {"token": "t", "mode": "eco", "pool": "eco", "run_ids": 1},
])
def test_a_message_that_is_not_ours_is_refused(kwargs):
    with pytest.raises(ValueError, match="not an easyflow dispatch"):
        DispatchMessage.from_kwargs(kwargs)


def test_the_app_leaves_retries_and_results_to_the_coordinator():
    conf = make_app("redis://127.0.0.1:1/0").conf
    assert conf.task_acks_late and conf.task_reject_on_worker_lost
    assert conf.worker_prefetch_multiplier == 1 and conf.task_ignore_result
    assert queue_name(Mode.REAL_TIME) == "easyflow.real-time"
