"""Talking to a running daemon over its Unix socket: one request line, one reply line
(the messages of runtime/protocol.py).

Every function here returns None (or False) when no daemon answers: the CLI then works alone.
"""

from __future__ import annotations

import json
import socket
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


def daemon_request(request: Request, home: Path | None = None,
                   timeout: float = 5.0) -> dict[str, Any] | None:
    sock = connect(home or state_dir(), timeout)
    if sock is None:
        return None
    with sock:
        return exchange(sock, request)


def connect(home: Path, timeout: float = 5.0) -> socket.socket | None:
    """A connection to the daemon's socket, or None if nothing listens there."""
    path = socket_path(home)
    if not path.exists():
        return None
    check_state_dir(home)  # as root, a socket others could have put there is not our daemon
    sock = None
    try:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(timeout)
        sock.connect(str(path))
    except OSError:
        if sock is not None:
            sock.close()
        return None
    return sock


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
