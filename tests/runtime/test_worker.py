"""A real worker process, driven through its stdin/stdout protocol."""

import json
import os
import subprocess
import sys
import time
from dataclasses import asdict

import pytest

from easyflow_cli.core.spec import parse_workflow_text, spec_to_dict
from easyflow_cli.runtime.executor import RunLimits
from easyflow_cli.runtime.protocol import RAN_ROW
from easyflow_cli.runtime.start_slot import read_slot
from easyflow_cli.runtime.worker import open_run_log


@pytest.fixture
def worker():
    proc = subprocess.Popen([sys.executable, "-m", "easyflow_cli.runtime.worker", "--nice", "19"],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    yield proc
    proc.kill()
    proc.wait()


def send(proc, message):
    proc.stdin.write(json.dumps(message) + "\n")
    proc.stdin.flush()


def next_event(proc):
    """The worker's next report; the runs of a "ran_rows" report one "ran" report each."""
    held = proc.__dict__.setdefault("held_events", [])
    if not held:
        event = json.loads(proc.stdout.readline())
        if event["ev"] != "ran_rows":
            return event
        for row in event["runs"]:
            ran = dict(zip(RAN_ROW, row, strict=True))
            held.append({"ev": "ran", "id": ran.pop("id"), "started_at": ran.pop("started_at"),
                         "at": ran.pop("at"), "outcome": ran})
    return held.pop(0)


def events_until(proc, predicate, limit=50):
    """Read events until `predicate` holds."""
    seen = []
    for _ in range(limit):
        event = next_event(proc)
        seen.append(event)
        if predicate(event):
            return seen
    raise AssertionError(seen)


def order(run_id, tmp_path, steps='[[steps]]\nrun = ["echo", "hi"]\n', timeout=30.0):
    spec = parse_workflow_text(f'name = "w{run_id}"\n{steps}')
    return {"id": run_id, "workflow": spec.name, "spec": spec_to_dict(spec),
            "log_path": str(tmp_path / f"{run_id}.log"),
            "limits": asdict(RunLimits(timeout=timeout, nice=19, kill_grace=0.5))}


def ended(event):
    """A run's end: alone, or with its start in one "ran" report (a short run)."""
    return event["ev"] in ("finished", "ran")


def began(event):
    return event["ev"] in ("started", "ran")


def run_message(*orders):
    """The daemon's `run` message for these orders (one pool: the first one's limits)."""
    return {"op": "run", "limits": orders[0]["limits"],
            "specs": {o["workflow"]: {"spec": o["spec"], "source_file": None} for o in orders},
            "runs": [[o["id"], o["workflow"], o["log_path"]] for o in orders]}


def test_worker_runs_a_batch_back_to_back(worker, tmp_path):
    assert json.loads(worker.stdout.readline())["ev"] == "ready"
    send(worker, run_message(order(1, tmp_path), order(2, tmp_path)))
    seen = events_until(worker, lambda e: ended(e) and e["id"] == 2)
    # Each run's start and end apart, or together in one "ran" report if it was short; its
    # step's process group only if the step still ran when the reports left.
    reports = [e for e in seen if e["ev"] != "step"]
    assert [e["id"] for e in reports] == sorted(e["id"] for e in reports)  # one after the other
    for run_id in (1, 2):
        its = [e for e in reports if e["id"] == run_id]
        assert began(its[0]) and ended(its[-1]) and its[-1]["outcome"]["state"] == "succeeded"
    assert "hi" in (tmp_path / "1.log").read_text()


def test_worker_is_demoted(worker):
    json.loads(worker.stdout.readline())
    assert os.getpriority(os.PRIO_PROCESS, worker.pid) == 19


def test_cancel_running_and_pending(worker, tmp_path):
    json.loads(worker.stdout.readline())
    slow = order(1, tmp_path, '[[steps]]\nrun = ["sleep", "30"]\n')
    send(worker, run_message(slow, order(2, tmp_path)))
    events_until(worker, lambda e: e["ev"] == "step")
    start = time.monotonic()
    send(worker, {"op": "cancel", "id": 1})
    send(worker, {"op": "cancel", "id": 2})
    seen = events_until(worker, lambda e: ended(e) and e["id"] == 2)
    finished = {e["id"]: e["outcome"]["state"] for e in seen if ended(e)}
    assert finished == {1: "cancelled", 2: "cancelled"}
    assert time.monotonic() - start < 5


def test_worker_exits_at_end_of_input(worker):
    json.loads(worker.stdout.readline())
    worker.stdin.close()
    assert worker.wait(timeout=10) == 0


def test_callable_steps_run_inside_the_worker(worker, tmp_path):
    (tmp_path / "ef_worker_calls.py").write_text(
        "import os, subprocess\n"
        "def pid(*args):\n    print('pid', os.getpid(), *args)\n"
        "    subprocess.run(['echo', 'from a child'])\n"
        "def boom():\n    raise RuntimeError('nope')\n")
    assert json.loads(worker.stdout.readline())["ev"] == "ready"
    cwd = json.dumps(str(tmp_path))
    ok = order(1, tmp_path, f'[[steps]]\ncall = "ef_worker_calls:pid"\nargs = ["x"]\ncwd = {cwd}\n')
    bad = order(2, tmp_path, f'[[steps]]\ncall = "ef_worker_calls:boom"\ncwd = {cwd}\n')
    send(worker, run_message(ok, bad))
    seen = events_until(worker, lambda e: ended(e) and e["id"] == 2)
    finished = {e["id"]: e["outcome"] for e in seen if ended(e)}
    assert finished[1]["state"] == "succeeded"
    assert (finished[2]["state"], finished[2]["error"]) == (
        "failed", "step 'step-1': RuntimeError: nope")
    assert f"pid {worker.pid} x" in (tmp_path / "1.log").read_text()


def test_cancel_a_running_callable_step(worker, tmp_path):
    (tmp_path / "ef_worker_slow.py").write_text("import time\ndef slow():\n    time.sleep(30)\n")
    json.loads(worker.stdout.readline())
    cwd = json.dumps(str(tmp_path))
    send(worker, run_message(
        order(1, tmp_path, f'[[steps]]\ncall = "ef_worker_slow:slow"\ncwd = {cwd}\n')))
    events_until(worker, lambda e: began(e))
    start = time.monotonic()
    send(worker, {"op": "cancel", "id": 1})
    seen = events_until(worker, lambda e: ended(e))
    assert seen[-1]["outcome"]["state"] == "cancelled"
    assert time.monotonic() - start < 5


def test_a_callable_step_reading_stdin_cannot_swallow_a_cancel(worker, tmp_path):
    (tmp_path / "ef_worker_stdin.py").write_text(
        "import sys, time\n"
        "def greedy():\n    print('read', repr(sys.stdin.read()), flush=True)\n"
        "    time.sleep(30)\n")
    json.loads(worker.stdout.readline())
    cwd = json.dumps(str(tmp_path))
    send(worker, run_message(
        order(1, tmp_path, f'[[steps]]\ncall = "ef_worker_stdin:greedy"\ncwd = {cwd}\n')))
    events_until(worker, began)
    send(worker, {"op": "cancel", "id": 1})
    seen = events_until(worker, ended)
    assert seen[-1]["outcome"]["state"] == "cancelled"
    assert "read ''" in (tmp_path / "1.log").read_text()


def test_a_command_step_s_run_is_noted_in_the_start_slot_before_its_program_runs(tmp_path):
    """No round trip to the daemon: the run is in the worker's start slot before its step's
    program runs (a crash then counts it as started), and its process group is reported
    while it runs, with its leader's start time, unasked."""
    slots = tmp_path / "slots"
    slots.mkdir()
    env = {**os.environ, "EASYFLOW_SLOTS": str(slots), "EASYFLOW_DAEMON_TOKEN": "t" * 32}
    proc = subprocess.Popen([sys.executable, "-m", "easyflow_cli.runtime.worker"], env=env,
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        json.loads(proc.stdout.readline())
        slot = slots / f"{'t' * 32}.{proc.pid}"
        gate = tmp_path / "gate"
        os.mkfifo(gate)
        script = f"tr -d \'\\\\000 \' < {slot}; echo $$; read line < {gate}"
        send(proc, run_message(order(4, tmp_path, f'[[steps]]\nrun = ["sh", "-c", "{script}"]\n')))
        seen = events_until(proc, lambda e: e["ev"] == "step")
        step = seen[-1]
        assert step["id"] == 4 and step["leader_start"] > 0
        gate.write_text("go\n")  # the step still ran when its report left: now it may end
        seen = events_until(proc, ended)
        assert ended(seen[-1]) and seen[-1]["outcome"]["state"] == "succeeded"
        printed = (tmp_path / "4.log").read_text().splitlines()
        assert printed[1:] == ["4", str(step["pgid"])]
    finally:
        proc.kill()
        proc.wait()


def test_a_worker_that_exits_leaves_its_start_slot_to_whoever_settles_its_runs(tmp_path):
    """Its daemon killed with the run's start still unread in the pipe: the worker reads the end
    of its orders and exits cleanly, and the slot must still say the run began (the daemon, or
    the next one's recovery, removes it once the start is counted), or it would run again."""
    slots = tmp_path / "slots"
    slots.mkdir()
    env = {**os.environ, "EASYFLOW_SLOTS": str(slots), "EASYFLOW_DAEMON_TOKEN": "t" * 32}
    proc = subprocess.Popen([sys.executable, "-m", "easyflow_cli.runtime.worker"], env=env,
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        send(proc, run_message(order(5, tmp_path, '[[steps]]\nrun = ["true"]\n'),
                               order(6, tmp_path, '[[steps]]\ncall = "os:getpid"\n')))
        proc.stdin.close()
        assert proc.wait(timeout=30) == 0
        assert read_slot(slots / f"{'t' * 32}.{proc.pid}") == {5, 6}
    finally:
        proc.kill()
        proc.wait()


def test_a_run_that_prints_nothing_leaves_no_log_file(worker, tmp_path):
    json.loads(worker.stdout.readline())
    silent = order(1, tmp_path, '[[steps]]\nrun = ["true"]\n[[steps]]\nrun = ["true"]\n')
    send(worker, run_message(silent, order(2, tmp_path)))
    events_until(worker, lambda e: ended(e) and e["id"] == 2)
    assert not (tmp_path / "1.log").exists()
    assert (tmp_path / "2.log").read_text() == "[easyflow] step 'step-1': echo hi\nhi\n"


def test_a_run_log_that_cannot_be_created_does_not_stop_the_run(worker, tmp_path):
    json.loads(worker.stdout.readline())
    unwritable = order(1, tmp_path)
    unwritable["log_path"] = str(tmp_path / "missing-dir" / "1.log")
    send(worker, run_message(unwritable))
    finished = events_until(worker, lambda e: ended(e))[-1]
    assert finished["outcome"]["state"] == "succeeded"
    assert finished["outcome"]["error"] == "run log incomplete: No such file or directory"


@pytest.mark.parametrize("kind", ["call", "command"])
def test_release_gives_back_what_has_not_started(worker, tmp_path, kind):
    """Asked while a long step runs (a call checks its orders from a SIGALRM handler), the
    worker hands back its waiting runs at once, except one being cancelled, which it ends."""
    (tmp_path / "ef_worker_long.py").write_text("import time\ndef long():\n    time.sleep(30)\n")
    cwd = json.dumps(str(tmp_path))
    long = (f'[[steps]]\ncall = "ef_worker_long:long"\ncwd = {cwd}\n' if kind == "call"
            else '[[steps]]\nrun = ["sleep", "30"]\n')
    json.loads(worker.stdout.readline())
    send(worker, run_message(order(1, tmp_path, long), order(2, tmp_path), order(3, tmp_path),
                             order(4, tmp_path)))
    events_until(worker, lambda e: began(e))
    send(worker, {"op": "cancel", "id": 3})
    send(worker, {"op": "release"})
    seen = events_until(worker, lambda e: e["ev"] == "released")
    assert seen[-1]["ids"] == [2, 4]
    send(worker, {"op": "cancel", "id": 1})
    seen = events_until(worker, lambda e: ended(e) and e["id"] == 3)
    finished = {e["id"]: e["outcome"]["state"] for e in seen if ended(e)}
    assert finished == {1: "cancelled", 3: "cancelled"}


def test_a_start_still_held_back_goes_out_with_its_end():
    from easyflow_cli.core.model import Outcome, RunState
    from easyflow_cli.runtime.protocol import Finished, Ran, Started, decode_report
    from easyflow_cli.runtime.worker import Worker

    inbox, _ = os.pipe()
    reports, outbox = os.pipe()
    worker = Worker(inbox, outbox)
    ok, failed = Outcome(RunState.SUCCEEDED), Outcome(RunState.FAILED, exit_code=1)
    start = Started(1, 1.0)
    worker.report_soon(start)
    worker.report_end(start, 2.0, ok)
    start = Started(2, 3.0)
    worker.report_soon(start)
    worker.flush()  # e.g. the run turned out long
    worker.report_end(start, 4.0, failed)
    worker.flush()
    lines = os.read(reports, 65536).splitlines()
    assert [decode_report(line) for line in lines] == [
        Ran(1, 1.0, 2.0, ok), Started(2, 3.0), Finished(2, 4.0, failed)]


def test_a_step_reported_only_if_it_still_runs_when_the_reports_leave():
    """A step that ended before the reports left has nothing left to find: not reported (and
    its leader's start time never read); one still running goes with its leader's start time."""
    from easyflow_cli.runtime.process_identity import start_ticks
    from easyflow_cli.runtime.protocol import Started, Step, decode_report
    from easyflow_cli.runtime.worker import Worker

    inbox, _ = os.pipe()
    reports, outbox = os.pipe()
    worker = Worker(inbox, outbox)
    worker.report_soon(Started(1, 1.0))
    worker.step_spawned(1, 10**9)  # no such process: its start time is never asked for
    worker.step_ended()
    worker.flush()
    leader = subprocess.Popen(["sleep", "30"], start_new_session=True)
    try:
        worker.step_spawned(2, leader.pid)
        worker.flush()
        worker.step_ended()  # already sent: nothing to take back
        worker.flush()
        lines = os.read(reports, 65536).splitlines()
        assert [decode_report(line) for line in lines] == [
            Started(1, 1.0), Step(2, leader.pid, start_ticks(leader.pid))]
    finally:
        leader.kill()
        leader.wait()


def test_a_run_across_a_wall_clock_jump_reports_its_monotonic_duration(tmp_path, monkeypatch):
    """The wall clock jumps two days while a run executes: its stamps show the jump, its
    duration does not."""
    from easyflow_cli.runtime import worker as worker_module
    from easyflow_cli.runtime.protocol import RunLimits, decode_report
    from easyflow_cli.runtime.worker import Job, Worker

    readings = iter([1_000.0, 1_000.0 + 2 * 86400])
    monkeypatch.setattr(worker_module.time, "time", lambda: next(readings))
    inbox, _ = os.pipe()
    reports, outbox = os.pipe()
    worker = Worker(inbox, outbox)
    spec = parse_workflow_text('name = "w"\n[[steps]]\nrun = ["sleep", "0.2"]\n')
    worker.execute(Job(1, spec, RunLimits(30.0), str(tmp_path / "1.log")))
    worker.flush()
    start, step, end = [decode_report(line) for line in os.read(reports, 65536).splitlines()]
    assert [type(r).__name__ for r in (start, step, end)] == ["Started", "Step", "Finished"]
    assert end.at - start.at == 2 * 86400
    assert 0.2 <= end.outcome.duration_s < 5


def test_a_run_log_is_not_opened_through_a_link(tmp_path, capsys):
    target = tmp_path / "precious"
    target.write_text("keep me\n")
    link = tmp_path / "5.log"
    link.symlink_to(target)
    with open_run_log(str(link)) as log, pytest.raises(OSError, match="is a symbolic link"):
        log.write(b"step output\n")
    assert target.read_text() == "keep me\n"
    assert "cannot open run log" in capsys.readouterr().err


def test_the_log_of_a_run_run_again_gets_both_attempts(tmp_path):
    """A run re-queued after a restart runs again under its id: its own log is reopened."""
    path = tmp_path / "5.log"
    for attempt in (b"first attempt\n", b"second attempt\n"):
        with open_run_log(str(path)) as log:
            log.write(attempt)
    assert path.read_bytes() == b"first attempt\nsecond attempt\n"
