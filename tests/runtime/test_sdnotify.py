from __future__ import annotations

import io
import logging
import os
import socket
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from easyflow_cli.runtime.sdnotify import JournalFormatter, Notifier, journal_log_prefix

pytestmark = pytest.mark.skipif(not hasattr(socket, "AF_UNIX"), reason="needs AF_UNIX")


class Listener:
    def __init__(self, sock: socket.socket, env_value: str) -> None:
        self.sock = sock
        self.env_value = env_value

    def recv(self) -> str:
        return self.sock.recv(4096).decode()

    def assert_empty(self) -> None:
        self.sock.setblocking(False)
        try:
            with pytest.raises(BlockingIOError):
                self.sock.recv(4096)
        finally:
            self.sock.setblocking(True)

    def notifier(self, **extra: str) -> Notifier:
        return Notifier.from_env({"NOTIFY_SOCKET": self.env_value, **extra})


@pytest.fixture
def listener(tmp_path: Path) -> Iterator[Listener]:
    path = tmp_path / "notify.sock"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(path))
    sock.settimeout(2)
    try:
        yield Listener(sock, str(path))
    finally:
        sock.close()


@pytest.fixture
def abstract_listener() -> Iterator[Listener]:
    if not sys.platform.startswith("linux"):
        pytest.skip("abstract AF_UNIX namespace is Linux-only")
    name = f"easyflow-test-{uuid.uuid4().hex}"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(b"\0" + name.encode())
    sock.settimeout(2)
    try:
        yield Listener(sock, "@" + name)
    finally:
        sock.close()


def test_ready_with_status(listener: Listener) -> None:
    assert listener.notifier().ready("serving 3 workflows") is True
    assert listener.recv() == "READY=1\nSTATUS=serving 3 workflows"


def test_ready_without_status(listener: Listener) -> None:
    assert listener.notifier().ready() is True
    assert listener.recv() == "READY=1"


def test_status(listener: Listener) -> None:
    assert listener.notifier().status("idle") is True
    assert listener.recv() == "STATUS=idle"


def test_status_newlines_cannot_inject_fields(listener: Listener) -> None:
    listener.notifier().status("line one\nREADY=1")
    assert listener.recv() == "STATUS=line one READY=1"


def test_stopping(listener: Listener) -> None:
    assert listener.notifier().stopping() is True
    assert listener.recv() == "STOPPING=1"


def test_reloading_sends_monotonic_usec(listener: Listener) -> None:
    before = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
    assert listener.notifier().reloading() is True
    after = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
    first, second = listener.recv().split("\n")
    assert first == "RELOADING=1"
    key, _, value = second.partition("=")
    assert key == "MONOTONIC_USEC"
    assert before <= int(value) <= after


def test_watchdog(listener: Listener) -> None:
    assert listener.notifier().watchdog() is True
    assert listener.recv() == "WATCHDOG=1"


def test_custom_lines_are_one_datagram(listener: Listener) -> None:
    assert listener.notifier().notify("STATUS=a", "EXTEND_TIMEOUT_USEC=5000000") is True
    assert listener.recv() == "STATUS=a\nEXTEND_TIMEOUT_USEC=5000000"
    listener.assert_empty()


def test_abstract_namespace_socket(abstract_listener: Listener) -> None:
    notifier = abstract_listener.notifier()
    assert notifier.ready("up") is True
    assert abstract_listener.recv() == "READY=1\nSTATUS=up"
    assert notifier.watchdog() is True
    assert abstract_listener.recv() == "WATCHDOG=1"


@pytest.mark.parametrize("env", [{}, {"NOTIFY_SOCKET": ""}, {"NOTIFY_SOCKET": "relative.sock"}])
def test_noop_without_socket(env: dict[str, str]) -> None:
    notifier = Notifier.from_env(env)
    assert notifier.enabled is False
    assert notifier.notify("READY=1") is False
    assert notifier.ready("x") is False
    assert notifier.status("x") is False
    assert notifier.stopping() is False
    assert notifier.reloading() is False
    assert notifier.watchdog() is False


def test_default_environ_is_os_environ(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    assert Notifier.from_env().enabled is False
    monkeypatch.setenv("NOTIFY_SOCKET", "/run/systemd/notify")
    assert Notifier.from_env().socket_path == "/run/systemd/notify"


def test_vanished_socket_does_not_raise(tmp_path: Path) -> None:
    path = tmp_path / "gone.sock"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(path))
    notifier = Notifier.from_env({"NOTIFY_SOCKET": str(path)})
    sock.close()
    path.unlink()
    assert notifier.ready("up") is False
    assert notifier.watchdog() is False


def test_closed_but_present_socket_does_not_raise(tmp_path: Path) -> None:
    path = tmp_path / "stale.sock"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(path))
    sock.close()  # the file stays behind but nobody listens: ECONNREFUSED
    assert Notifier.from_env({"NOTIFY_SOCKET": str(path)}).stopping() is False


def test_unknown_abstract_name_does_not_raise() -> None:
    if not sys.platform.startswith("linux"):
        pytest.skip("abstract AF_UNIX namespace is Linux-only")
    notifier = Notifier.from_env({"NOTIFY_SOCKET": f"@nobody-{uuid.uuid4().hex}"})
    assert notifier.status("x") is False


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({}, None),
        ({"WATCHDOG_USEC": "30000000"}, 15.0),
        ({"WATCHDOG_USEC": "1000000", "WATCHDOG_PID": str(os.getpid())}, 0.5),
        ({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": str(os.getpid() + 1)}, None),
        ({"WATCHDOG_USEC": "0"}, None),
        ({"WATCHDOG_USEC": "-5"}, None),
        ({"WATCHDOG_USEC": "soon"}, None),
        ({"WATCHDOG_USEC": "500", "WATCHDOG_PID": "garbage"}, 0.00025),
    ],
)
def test_watchdog_interval(env: dict[str, str], expected: float | None) -> None:
    interval = Notifier.from_env(env).watchdog_interval
    if expected is None:
        assert interval is None
    else:
        assert interval == pytest.approx(expected)


@pytest.mark.parametrize(
    ("level", "prefix"),
    [
        (logging.DEBUG, "<7>"),
        (logging.INFO, "<6>"),
        (logging.WARNING, "<4>"),
        (logging.ERROR, "<3>"),
        (logging.CRITICAL, "<2>"),
        (5, "<7>"),
        (25, "<6>"),
        (45, "<3>"),
        (60, "<2>"),
    ],
)
def test_journal_log_prefix(level: int, prefix: str) -> None:
    assert journal_log_prefix(level) == prefix


def _record(level: int, msg: str, exc_info: object = None) -> logging.LogRecord:
    record = logging.LogRecord("easyflow", level, __file__, 1, msg, None, exc_info)  # type: ignore[arg-type]
    # 2026-11-25 18:00:00 local time, so the expected string does not depend on TZ.
    record.created = time.mktime((2026, 11, 25, 18, 0, 0, 0, 0, -1))
    record.msecs = 0
    return record


@pytest.mark.parametrize("var", ["JOURNAL_STREAM", "INVOCATION_ID"])
def test_formatter_under_systemd(var: str) -> None:
    formatter = JournalFormatter({var: "8:12345"})
    assert formatter.journal is True
    assert formatter.format(_record(logging.INFO, "started")) == "<6>started"
    assert formatter.format(_record(logging.ERROR, "boom")) == "<3>boom"


def test_formatter_outside_systemd() -> None:
    formatter = JournalFormatter({})
    assert formatter.journal is False
    assert formatter.format(_record(logging.INFO, "started")) == "2026-11-25 18:00:00 INFO started"
    assert formatter.format(_record(logging.WARNING, "hot")) == "2026-11-25 18:00:00 WARNING hot"


def test_formatter_reads_os_environ_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("JOURNAL_STREAM", raising=False)
    monkeypatch.delenv("INVOCATION_ID", raising=False)
    assert JournalFormatter().journal is False
    monkeypatch.setenv("INVOCATION_ID", "abc")
    assert JournalFormatter().journal is True


def test_formatter_prefixes_every_traceback_line() -> None:
    try:
        raise ValueError("bad")
    except ValueError:
        exc_info = sys.exc_info()
    text = JournalFormatter({"JOURNAL_STREAM": "1:2"}).format(
        _record(logging.ERROR, "failed", exc_info)
    )
    lines = text.split("\n")
    assert lines[0] == "<3>failed"
    assert len(lines) > 2
    assert all(line.startswith("<3>") for line in lines)
    assert lines[-1] == "<3>ValueError: bad"


def test_formatter_with_logger() -> None:
    # End to end through a real handler, as the daemon wires it up.
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JournalFormatter({"INVOCATION_ID": "x"}))
    logger = logging.getLogger(f"easyflow.test.{uuid.uuid4().hex}")
    logger.propagate = False
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    logger.debug("d")
    logger.warning("w")
    assert stream.getvalue() == "<7>d\n<4>w\n"
