"""The control socket: clients' requests, read without blocking the loop, answered by a table
of handlers over the typed requests of runtime/protocol.py.

Only our own user (or root) may connect. A request that is not one of ours gets a refusal
(`{"ok": false, "error": ...}`) and changes nothing; the loop goes on.
"""

from __future__ import annotations

import logging
import os
import selectors
import socket
import sqlite3
import struct
from collections.abc import Callable
from pathlib import Path
from typing import Any

from easyflow_cli.core.errors import EasyflowError, shown
from easyflow_cli.runtime.protocol import (
    ProtocolError,
    Refusal,
    Reply,
    Request,
    decode_request,
    encode,
)

log = logging.getLogger("easyflow.daemon")

# Requests are a few dozen bytes; a client that sends more without a newline is not a client.
MAX_REQUEST_BYTES = 64 * 1024

Handlers = dict[type, Callable[[Any], Reply]]


class ControlServer:
    def __init__(self, path: Path, selector: selectors.BaseSelector, handlers: Handlers) -> None:
        self.path = path
        self.selector = selector
        self.handlers = handlers
        self.listener: socket.socket | None = None

    def open(self) -> None:
        if self.path.exists() or self.path.is_symlink():
            self.path.unlink()  # stale: we hold the lock, so no live daemon owns it
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        old_umask = os.umask(0o177)
        try:
            listener.bind(str(self.path))
        finally:
            os.umask(old_umask)
        os.chmod(self.path, 0o600)
        listener.listen(64)
        listener.setblocking(False)
        self.selector.register(listener, selectors.EVENT_READ, self.accept)
        self.listener = listener

    def close(self) -> None:
        if self.listener is not None:
            self.listener.close()
            self.path.unlink(missing_ok=True)

    def accept(self, listener: socket.socket) -> bool:
        try:
            conn, _ = listener.accept()
        except BlockingIOError:
            return True
        if not _peer_allowed(conn):
            log.warning("refused a connection from another user")
            conn.close()
            return True
        conn.setblocking(False)
        reader = _RequestReader(self)
        self.selector.register(conn, selectors.EVENT_READ, reader.on_readable)
        # A client sends its request right after connecting: answering it now saves a turn of
        # the loop (and its scheduling queries) on a real-time run's way to its worker.
        reader.on_readable(conn)
        return True

    def answer(self, line: bytes) -> Reply:
        """The reply to one request line: the handler's, or a refusal."""
        try:
            request: Request = decode_request(line)
        except ProtocolError as exc:
            log.warning("bad request: %s", exc)
            return Refusal(str(exc))
        try:
            return self.handlers[type(request)](request)
        except EasyflowError as exc:
            return Refusal(str(exc))
        except sqlite3.Error as exc:
            log.warning("request %s failed: %s", request.op, exc)
            return Refusal(f"database: {exc}")


class _RequestReader:
    """Reads one JSON line from a client without blocking the loop, answers, closes."""

    def __init__(self, server: ControlServer) -> None:
        self.server = server
        self.buffer = b""

    def on_readable(self, conn: socket.socket) -> bool:
        try:
            data = conn.recv(65536)
        except BlockingIOError:
            return True
        except OSError:
            data = b""
        self.buffer += data
        if data and not self.buffer.endswith(b"\n") and len(self.buffer) <= MAX_REQUEST_BYTES:
            return True
        self.server.selector.unregister(conn)
        try:
            if len(self.buffer) > MAX_REQUEST_BYTES:
                log.warning("bad request: longer than %d bytes", MAX_REQUEST_BYTES)
            elif self.buffer.strip():
                reply = self.server.answer(self.buffer)
                conn.setblocking(True)
                conn.settimeout(1.0)
                conn.sendall(encode(reply))
        except OSError as exc:
            log.warning("bad request: %s", shown(str(exc)))
        finally:
            conn.close()
        return True


def _peer_allowed(conn: socket.socket) -> bool:
    """Only our own user (or root) may talk to the daemon."""
    creds = conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    _pid, uid, _gid = struct.unpack("3i", creds)
    return uid in (os.getuid(), 0)
