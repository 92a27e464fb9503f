"""The Celery side of a cluster, as the coordinator and every worker must agree on it: the
app's settings, one queue per mode, the task's name and its message.

Celery only carries runs that are ready to workers with a free slot. The coordinator keeps the
queue, its order, priorities, retries and time in PostgreSQL, so none of Celery's priorities,
ETA, retries, revoke or results are used: a message is acknowledged after its task ran
(`task_acks_late`), put back when the worker process running it died
(`task_reject_on_worker_lost`), and each worker process holds one message at a time (prefetch
1). A message that is delivered again finds its dispatch token gone from the run and is
dropped (`cluster_queue.WorkerQueue.accept`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from celery import Celery
from kombu import Producer

from easyflow_cli.core.model import Mode, PoolName
from easyflow_cli.storage.cluster_queue import Dispatch

TASK_NAME = "easyflow.execute"


def queue_name(mode: Mode | PoolName) -> str:
    """The Celery queue of a mode's pool: `easyflow.real-time`, `easyflow.balanced`, …"""
    return f"easyflow.{mode.value}"


def make_app(broker_url: str) -> Celery:
    app = Celery("easyflow", broker=broker_url, set_as_current=False)
    app.conf.update(
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        task_ignore_result=True,
        result_backend=None,
        task_serializer="json",
        accept_content=["json"],
        broker_connection_retry_on_startup=True,
        worker_hijack_root_logger=False,
        worker_send_task_events=False,
        task_send_sent_event=False,
        # No message outlives its dispatch: one nobody took is put back in PostgreSQL's queue
        # by the coordinator after `dispatch_timeout`, whatever Redis still holds.
        broker_transport_options={"visibility_timeout": 3600},
    )
    return app


@dataclass(frozen=True, slots=True)
class DispatchMessage:
    """What a Celery message carries: the dispatch, as JSON-able task arguments."""

    token: str
    mode: Mode
    pool: PoolName
    run_ids: tuple[int, ...]
    batch_id: str | None

    @classmethod
    def of(cls, dispatch: Dispatch) -> DispatchMessage:
        return cls(dispatch.token, dispatch.mode, dispatch.pool, dispatch.run_ids,
                   dispatch.batch_id)

    def to_kwargs(self) -> dict[str, object]:
        return {"token": self.token, "mode": self.mode.value, "pool": self.pool.value,
                "run_ids": list(self.run_ids), "batch_id": self.batch_id}

    @classmethod
    def from_kwargs(cls, kwargs: dict[str, object]) -> DispatchMessage:
        """Refuses (ValueError) a message that is not one of ours."""
        try:
            run_ids = kwargs["run_ids"]
            if not isinstance(run_ids, list) or not all(type(i) is int for i in run_ids):
                raise ValueError("run_ids must be a list of integers")
            batch = kwargs.get("batch_id")
            return cls(str(kwargs["token"]), Mode(str(kwargs["mode"])),
                       PoolName(str(kwargs["pool"])),
                       tuple(run_ids), None if batch is None else str(batch))
        except (KeyError, ValueError) as exc:
            raise ValueError(f"not an easyflow dispatch: {json.dumps(kwargs)[:200]}: {exc}"
                             ) from None


def send(app: Celery, dispatch: Dispatch, producer: Producer | None = None) -> None:
    """Hand a dispatch to its pool's queue (over `producer`, else one taken from the app's
    pool for this message)."""
    app.send_task(TASK_NAME, kwargs=DispatchMessage.of(dispatch).to_kwargs(),
                  queue=queue_name(dispatch.pool), producer=producer)


class Sender:
    """Sends dispatches over one producer kept open: a producer taken from the pool per message
    opens a new channel each time, a round trip to the broker before the message's own. After
    a failed send the next one starts over with a fresh producer."""

    def __init__(self, app: Celery) -> None:
        self.app = app
        self.producer: Producer | None = None

    def __call__(self, dispatch: Dispatch) -> None:
        if self.producer is None:
            self.producer = self.app.producer_pool.acquire(block=True)
        try:
            send(self.app, dispatch, self.producer)
        except Exception:
            self.close()
            raise

    def close(self) -> None:
        producer, self.producer = self.producer, None
        if producer is not None:
            producer.release()
