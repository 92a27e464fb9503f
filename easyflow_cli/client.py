"""Talking to a running daemon over its Unix socket: one JSON line each way.

Every function here returns None (or False) when no daemon answers: the CLI then works alone.
"""

from __future__ import annotations

import json
import socket
from pathlib import Path
from typing import Any

from easyflow_cli.paths import socket_path, state_dir


def daemon_request(request: dict[str, Any], home: Path | None = None,
                   timeout: float = 5.0) -> dict[str, Any] | None:
    path = socket_path(home or state_dir())
    if not path.exists():
        return None
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(timeout)
            sock.connect(str(path))
            sock.sendall(json.dumps(request).encode() + b"\n")
            reply = b""
            while not reply.endswith(b"\n"):
                chunk = sock.recv(65536)
                if not chunk:
                    break
                reply += chunk
    except (ConnectionRefusedError, FileNotFoundError, TimeoutError, OSError):
        return None
    if not reply:
        return None
    return json.loads(reply)


def notify_reload(home: Path | None = None) -> bool:
    return daemon_request({"op": "reload"}, home) is not None


def wake(home: Path | None = None, run_ids: list[int] | None = None) -> bool:
    """Tell the daemon new runs are queued (it re-plans their off-peak wait by its config)."""
    return daemon_request({"op": "wake", "runs": run_ids or []}, home) is not None


def daemon_status(home: Path | None = None, timeout: float = 5.0) -> dict[str, Any] | None:
    return daemon_request({"op": "status"}, home, timeout)
