"""Talking to a running daemon over its Unix socket: one request line, one reply line
(the messages of runtime/protocol.py).

`ask` says why no answer came (`Silence`): nothing listens (the CLI may then work alone), or a
daemon listens but does not answer (it must not be bypassed). The other functions return None
(or False) for either.
"""

from __future__ import annotations

import json
import socket
import time
from enum import Enum
from pathlib import Path
from typing import Any

from easyflow_cli.core.paths import socket_path, state_dir
from easyflow_cli.core.trust import check_state_dir
from easyflow_cli.runtime.protocol import (
    CancelRequest,
    ReloadRequest,
    Request,
    StatusRequest,
    WakeRequest,
    encode,
)

BACKLOG_RETRY_S = 0.005


class Silence(Enum):
    """Why no answer came."""

    NOT_RUNNING = "not running"  # nothing listens on the socket
    NOT_ANSWERING = "not answering"  # a daemon listens, but gave no reply in time


def ask(request: Request, home: Path | None = None,
        timeout: float = 5.0) -> dict[str, Any] | Silence:
    """The daemon's reply to one request, or why there is none."""
    sock = _open(home or state_dir(), timeout)
    if isinstance(sock, Silence):
        return sock
    with sock:
        reply = exchange(sock, request)
    return Silence.NOT_ANSWERING if reply is None else reply


def daemon_request(request: Request, home: Path | None = None,
                   timeout: float = 5.0) -> dict[str, Any] | None:
    reply = ask(request, home, timeout)
    return None if isinstance(reply, Silence) else reply


def connect(home: Path, timeout: float = 5.0) -> socket.socket | None:
    """A connection to the daemon's socket, or None if nothing listens there."""
    sock = _open(home, timeout)
    return None if isinstance(sock, Silence) else sock


def _open(home: Path, timeout: float) -> socket.socket | Silence:
    path = socket_path(home)
    if not path.exists():
        return Silence.NOT_RUNNING
    check_state_dir(home)  # as root, a socket others could have put there is not our daemon
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(timeout)
    try:
        _connect_when_there_is_room(sock, str(path), time.monotonic() + timeout)
    except OSError as exc:
        sock.close()
        # Its backlog stayed full: a daemon is there and takes no connections.
        return Silence.NOT_ANSWERING if isinstance(exc, BlockingIOError) else Silence.NOT_RUNNING
    return sock


def _connect_when_there_is_room(sock: socket.socket, path: str, deadline: float) -> None:
    # A Unix socket whose backlog is full refuses a connection with EAGAIN instead of making it
    # wait: the daemon is there, busy taking others, so try again until the timeout.
    while True:
        try:
            sock.connect(path)
            return
        except BlockingIOError:
            if time.monotonic() >= deadline:
                raise
            time.sleep(BACKLOG_RETRY_S)


def listening(home: Path) -> bool:
    """Whether a daemon takes connections on the socket (asked without a request)."""
    sock = connect(home)
    if sock is None:
        return False
    sock.close()
    return True


def exchange(sock: socket.socket, request: Request) -> dict[str, Any] | None:
    """Send one request on a connection and read the reply (None if the daemon gave none)."""
    try:
        sock.sendall(encode(request))
        reply = b""
        while not reply.endswith(b"\n"):
            chunk = sock.recv(65536)
            if not chunk:
                break
            reply += chunk
    except OSError:
        return None
    if not reply:
        return None
    try:
        answer = json.loads(reply)
    except ValueError:
        return None
    return answer if isinstance(answer, dict) else None


def notify_reload(home: Path | None = None) -> bool:
    return daemon_request(ReloadRequest(), home) is not None


def wake(home: Path | None = None) -> bool:
    """Tell the daemon new runs are queued; whether it answered."""
    return wake_on(connect(home or state_dir()))


def wake_on(sock: socket.socket | None) -> bool:
    """`wake` over a connection made earlier (to learn the daemon is up), then closed."""
    if sock is None:
        return False
    with sock:
        return exchange(sock, WakeRequest()) is not None


def cancel(run_id: int, home: Path | None = None) -> dict[str, Any] | None:
    return daemon_request(CancelRequest(run_id), home)


def daemon_status(home: Path | None = None, timeout: float = 5.0) -> dict[str, Any] | None:
    return daemon_request(StatusRequest(), home, timeout)
