"""Hand ready runs to the cluster's workers: for each pool, as many dispatches as its live
workers have free slots, each sent to the pool's Celery queue once its claim has committed.

Real-time first, then balanced, then eco, as on one box; each free eco slot takes a batch of
up to the eco pool's `batch_size` runs in one dispatch. A dispatch that cannot be sent (the
broker is down) is left to expire: after `dispatch_timeout` it is back in the queue.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime

from easyflow_cli.core.config import Config
from easyflow_cli.core.model import Mode, PoolName
from easyflow_cli.storage.cluster_queue import CoordinatorQueue, Dispatch, Rooms

log = logging.getLogger("easyflow.coordinator")

Send = Callable[[Dispatch], None]


class RemoteDispatcher:
    def __init__(self, queue: CoordinatorQueue, send: Send, config: Config,
                 lease: float) -> None:
        self.queue = queue
        self.send = send
        self.config = config  # replaced on reload
        self.lease = lease
        self.rooms: Rooms | None = None  # read at the last dispatch
        self.free: dict[Mode, int] = dict.fromkeys(Mode, 0)  # after the last dispatch

    def dispatch(self, now: datetime) -> list[Dispatch]:
        """Dispatch and send what the pools have room for; what was sent."""
        self.rooms = rooms = self.queue.rooms(now=now, lease=self.lease)
        sent: list[Dispatch] = []
        for mode in Mode:
            slots = rooms.free.get(mode, 0)
            dispatches = self._fill(mode, slots, now) if mode in rooms.ready else []
            self.free[mode] = slots - len(dispatches)
            for dispatch in dispatches:
                self._send(dispatch)
            sent += dispatches
        return sent

    def idle_modes(self) -> list[Mode]:
        """The modes whose pool had a free slot left at the last dispatch."""
        return [mode for mode, free in self.free.items() if free > 0]

    def _fill(self, mode: Mode, slots: int, now: datetime) -> list[Dispatch]:
        pool = PoolName.of(mode)
        size = self.config.pool(mode).batch_size if mode is Mode.ECO else 1
        limited = self.rooms is None or self.rooms.limited
        if size == 1:
            return self.queue.dispatch(mode, now=now, pool=pool, slots=slots, batch=False,
                                       limited=limited)
        batches: list[Dispatch] = []
        for _ in range(slots):
            batch = self.queue.dispatch(mode, now=now, pool=pool, slots=size, batch=True)
            if not batch:
                break
            batches += batch
        return batches

    def _send(self, dispatch: Dispatch) -> None:
        try:
            self.send(dispatch)
        except Exception as exc:  # the broker's errors are many; each leaves the run to expire
            log.error("the dispatch of %s was not sent (%s); back in the queue after the "
                      "dispatch timeout", runs_named(dispatch), exc)
            return
        log.info("%s dispatched to the %s pool", runs_named(dispatch), dispatch.pool.value)


def runs_named(dispatch: Dispatch) -> str:
    ids = ", ".join(map(str, dispatch.run_ids))
    return f"runs {ids}" if len(dispatch.run_ids) > 1 else f"run {ids}"
