"""End-to-end notifications: a real daemon, the real CLI, a webhook receiver on 127.0.0.1 and a
command that keeps what it was given. Counts are exact: one event, one delivery."""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import signal
import socket
import sqlite3
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

pytest_plugins = ["tests.daemon_harness"]
pytest.register_assert_rewrite("tests.daemon_harness")
from tests.daemon_harness import DaemonHarness, parse_time, wait_for  # noqa: E402

pytestmark = pytest.mark.e2e

CONFIG = """
    [pools.real-time]
    workers = 2

    [pools.balanced]
    workers = 1

    [pools.eco]
    workers = 1
    off_peak = ""
    """


class Receiver:
    """A webhook endpoint on 127.0.0.1: keeps every request it answered; may take its time."""

    def __init__(self, port: int = 0, delay: float = 0.0, held: bool = False) -> None:
        self.delay = delay
        self.release = threading.Event()  # a held receiver answers once this is set
        if not held:
            self.release.set()
        self.received: list[tuple[dict[str, str], bytes]] = []
        self.answered_at: list[float] = []  # wall clock
        self.arrived = threading.Event()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.arrived.set()
                time.sleep(receiver.delay)
                receiver.release.wait(60)
                self.send_response(200)
                self.end_headers()
                receiver.received.append((dict(self.headers), body))
                receiver.answered_at.append(time.time())

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/hook"

    def events(self, kind: str | None = None) -> list[dict]:
        found = [json.loads(body) for _, body in self.received]
        return [e for e in found if kind is None or e["event"] == kind]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver():
    made: list[Receiver] = []

    def make(**kwargs) -> Receiver:
        made.append(Receiver(**kwargs))
        return made[-1]

    yield make
    for r in made:
        r.close()


def keeper(path: Path) -> list[str]:
    """A notify command that appends the event it gets on stdin to `path`, one per line."""
    return [sys.executable, "-c", f"import sys; open({str(path)!r}, 'a').write("
            "sys.stdin.read().replace(chr(10), ' ') + chr(10))"]


def kept(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def outbox(daemon: DaemonHarness) -> list[dict]:
    conn = sqlite3.connect(daemon.home / "easyflow.db", timeout=10)
    conn.row_factory = sqlite3.Row
    try:
        return [dict(r) for r in conn.execute("SELECT * FROM notifications ORDER BY id")]
    finally:
        conn.close()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_one_failure_after_the_last_retry_and_one_recovery(daemon: DaemonHarness, receiver,
                                                           tmp_path):
    hook = receiver()
    secret = tmp_path / "hook.secret"
    secret.write_text("s3cret\n")
    secret.chmod(0o600)
    calls = tmp_path / "calls.jsonl"
    gate = tmp_path / "fixed"
    daemon.write_config(CONFIG)
    daemon.add_workflow("flaky", ["sh", "-c", f"echo trying; test -e {gate}"], retries=2,
                        notify={"command": keeper(calls), "webhook": hook.url,
                                "webhook_secret_file": str(secret)})
    daemon.start()
    first = daemon.submit("flaky")
    runs = daemon.wait_for_runs(lambda rs: len(rs) == 3 and all(r["state"] == "failed"
                                                                 for r in rs),
                                workflow="flaky", message="three failed attempts")
    wait_for(lambda: hook.events("failure") and kept(calls), message="the failure delivered")

    gate.touch()
    fixed = daemon.submit("flaky")
    daemon.wait_for_state(fixed["id"], "succeeded")
    wait_for(lambda: hook.events("recovery") and len(kept(calls)) == 2,
             message="the recovery delivered")
    daemon.stop()

    assert [e["event"] for e in hook.events()] == ["failure", "recovery"]
    assert [e["event"] for e in kept(calls)] == ["failure", "recovery"]
    failure = hook.events("failure")[0]
    assert failure["id"] == runs[-1]["id"] and failure["attempt"] == 3
    assert failure["incident"]["first_run"] == first["id"]
    assert failure["incident"]["attempts"] == 3
    assert failure["host"] == socket.gethostname() and "flaky failed" in failure["summary"]
    shown = daemon.run(runs[-1]["id"])
    # The run record, as `runs show` has it (less the attempt chain and the receipt `runs show`
    # adds to it).
    record = {k: v for k, v in shown.items() if k not in ("attempts", "receipt")}
    assert {k: failure[k] for k in record} == record
    assert kept(calls)[0]["event_id"] == failure["event_id"]
    recovery = hook.events("recovery")[0]
    assert recovery["id"] == fixed["id"] and recovery["incident"]["first_run"] == first["id"]
    headers, body = hook.received[0]
    assert headers["X-Easyflow-Event-Id"] == failure["event_id"]
    assert headers["X-Easyflow-Signature"] == "sha256=" + hmac.new(
        b"s3cret", body, hashlib.sha256).hexdigest()
    listed = daemon.cli_json("notifications", "list", "--json")
    assert sorted((r["event"], r["channel"], r["state"]) for r in listed) == [
        ("failure", "command", "delivered"), ("failure", "webhook", "delivered"),
        ("recovery", "command", "delivered"), ("recovery", "webhook", "delivered")]


def test_kill_9_between_the_end_and_its_delivery_still_delivers_once(daemon: DaemonHarness,
                                                                   receiver):
    port = free_port()  # nothing listens yet: the first try fails, the row waits
    daemon.write_config(CONFIG)
    daemon.add_workflow("breaks", ["false"],
                        notify={"webhook": f"http://127.0.0.1:{port}/hook"})
    daemon.start()
    daemon.submit("breaks")
    wait_for(lambda: [r for r in outbox(daemon) if r["attempts"] >= 1], timeout=20,
             message="a first delivery attempt that failed")
    failing = wait_for(lambda: daemon.status()["notifications"]["failing"],
                       message="`status` to show the failing channel")
    assert [(f["workflow"], f["channel"]) for f in failing] == [("breaks", "webhook")]
    assert "Connection refused" in failing[0]["error"]
    os.killpg(daemon.pid, signal.SIGKILL)
    daemon.wait_exit(10)
    assert [r["state"] for r in outbox(daemon)] == ["pending"]

    hook = receiver(port=port)
    daemon.start()
    wait_for(lambda: hook.events(), timeout=30, message="the delivery after the restart")
    wait_for(lambda: outbox(daemon)[0]["state"] == "delivered", message="marked delivered")
    daemon.stop()
    daemon.start()  # a later start sends nothing again
    daemon.stop()
    assert [e["event"] for e in hook.events()] == ["failure"]


def test_a_webhook_slow_to_answer_does_not_delay_dispatch(daemon: DaemonHarness, receiver):
    # The receiver holds its answer until the run has gone through; with
    # EASYFLOW_TEST_HOOK_DELAY=30 it sleeps that long instead (the figure measured by hand).
    delay = float(os.environ.get("EASYFLOW_TEST_HOOK_DELAY", "0"))
    hook = receiver(delay=delay, held=not delay)
    daemon.write_config(CONFIG)
    daemon.add_workflow("breaks", ["false"], notify={"webhook": hook.url})
    daemon.add_workflow("click", ["true"])
    daemon.start()
    daemon.submit("breaks")
    assert hook.arrived.wait(20), "the webhook was never called"
    click = daemon.submit("click")
    done = daemon.wait_for_state(click["id"], "succeeded", timeout=10)
    latency = (parse_time(done["started_at"]) - parse_time(done["enqueued_at"])).total_seconds()
    held = f"answering after {delay:g}s" if delay else "holding its answer"
    print(f"dispatch latency with the webhook {held}: {latency:.4f}s")
    assert latency < 1.0, done
    hook.release.set()
    wait_for(lambda: hook.received, timeout=hook.delay + 20, message="the slow webhook")
    daemon.stop()
    assert parse_time(done["finished_at"]).timestamp() < hook.answered_at[0], \
        "the run was not dispatched while the webhook was still answering"


def test_slow_fires_on_a_run_four_times_the_p95_and_not_on_normal_runs(daemon: DaemonHarness,
                                                                       receiver, tmp_path):
    hook = receiver()
    length = tmp_path / "seconds"
    length.write_text("0.25")
    daemon.write_config(CONFIG)
    daemon.add_workflow("steady", ["sh", "-c", f"sleep $(cat {length})"],
                        notify={"webhook": hook.url, "on": ["failure", "slow"]})
    daemon.start()
    daemon.cli("run", "steady", "--now", "--count", "20", "--no-wait")
    daemon.wait_for_runs(lambda rs: len(rs) == 20 and all(r["state"] == "succeeded"
                                                          for r in rs),
                         workflow="steady", timeout=60, message="20 normal runs")
    normal = [r["duration_s"] for r in daemon.runs("steady")]
    length.write_text("1.2")  # about 4 x the p95 of the runs above
    slow = daemon.submit("steady")
    daemon.wait_for_state(slow["id"], "succeeded")
    wait_for(lambda: hook.events("slow"), message="the slow event")
    daemon.stop()
    events = hook.events()
    assert [(e["event"], e["id"]) for e in events] == [("slow", slow["id"])], events
    baseline = events[0]["baseline"]
    print(f"normal runs {min(normal):.3f}-{max(normal):.3f}s, p95 {baseline['p95_s']:.3f}s; "
          f"slow run {events[0]['duration_s']:.3f}s")
    assert events[0]["duration_s"] > 3 * baseline["p95_s"]


def test_late_fires_for_a_scheduled_run_that_could_not_start(daemon: DaemonHarness, receiver,
                                                             tmp_path):
    hook = receiver()
    gate = tmp_path / "free"
    daemon.write_config(CONFIG)
    daemon.add_workflow("hog", ["sh", "-c", f"while [ ! -e {gate} ]; do sleep 0.05; done"],
                        execution_mode="eco")
    daemon.add_workflow("nightly", ["true"], schedules=[{"every": "1s"}],
                        notify={"webhook": hook.url, "on": ["late"], "late_after": "1s"})
    daemon.start()
    daemon.submit("hog")  # takes the one eco worker: the schedule's runs cannot start
    wait_for(lambda: hook.events("late"), timeout=30, message="a late event")
    gate.touch()
    late = hook.events("late")[0]
    assert late["workflow"] == "nightly" and late["state"] == "queued"
    assert late["trigger"] == "schedule" and "has not started within 1s" in late["summary"]
    daemon.stop()
    assert len({e["id"] for e in hook.events("late")}) == len(hook.events("late"))
