"""How a pool decides how many runs each worker may hold (no processes: stand-in workers)."""

from types import SimpleNamespace

from easyflow_cli.core.config import load_config
from easyflow_cli.core.model import Mode
from easyflow_cli.runtime.pools import (
    PREFETCH_DEPTH,
    RELEASE_AFTER_S,
    SHORT_RUN_S,
    Assignment,
    Pool,
    WorkerProcess,
)

NOW = 1000.0


def worker(name, held=0, started_mono=None, retiring=False, releasing=False):
    stand_in = SimpleNamespace(name=name, retiring=retiring, releasing=releasing,
                               assignments={i: Assignment(i, {}) for i in range(held)})
    if held:
        stand_in.assignments[0].started_mono = started_mono
    for method in ("long_from", "running_long", "release_due_at"):
        setattr(stand_in, method, getattr(WorkerProcess, method).__get__(stand_in))
    return stand_in


def pool(*workers, typical=None):
    p = Pool(Mode.REAL_TIME, load_config().pool(Mode.REAL_TIME), list(workers))
    p.typical_run_s = typical
    return p


def test_one_run_at_a_time_until_the_pool_knows_its_runs_are_short():
    assert pool().prefetch_depth == 1
    assert pool(typical=SHORT_RUN_S * 2).prefetch_depth == 1
    assert pool(typical=SHORT_RUN_S / 2).prefetch_depth == PREFETCH_DEPTH


def test_typical_duration_follows_recent_runs():
    p = pool()
    p.note_duration(10.0)
    for _ in range(40):
        p.note_duration(0.001)
    assert p.prefetch_depth == PREFETCH_DEPTH
    p.note_duration(10.0)
    assert p.prefetch_depth == 1


def test_long_runs_only_go_to_idle_workers():
    idle, busy = worker("a"), worker("b", held=1)
    assert [(w.name, room) for w, room in pool(idle, busy).rooms(NOW)] == [("a", 1)]


def test_short_runs_top_up_workers_down_to_half_their_depth():
    half = PREFETCH_DEPTH // 2
    workers = [worker("idle"), worker("low", held=half, started_mono=NOW),
               worker("full", held=half + 1, started_mono=NOW),
               worker("retiring", retiring=True), worker("releasing", releasing=True),
               worker("long", held=1, started_mono=NOW - RELEASE_AFTER_S)]
    rooms = pool(*workers, typical=0.001).rooms(NOW)
    assert [(w.name, room) for w, room in rooms] == [("idle", PREFETCH_DEPTH),
                                                      ("low", PREFETCH_DEPTH - half)]


def test_runs_behind_a_long_run_are_waiting():
    long = worker("long", held=3, started_mono=NOW - RELEASE_AFTER_S)
    assert WorkerProcess.waiting_behind_long_run(long, NOW)
    assert not WorkerProcess.waiting_behind_long_run(long, NOW - 1)
    assert not WorkerProcess.waiting_behind_long_run(worker("alone", 1, NOW - 60), NOW)
