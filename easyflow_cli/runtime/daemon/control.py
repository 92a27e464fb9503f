"""The control socket: clients' requests, read without blocking the loop, answered by a table
of handlers over the typed requests of runtime/protocol.py.

Only our own user (or root) may connect; refusals of other users are logged, rate-limited. A
request that is not one of ours gets a refusal (`{"ok": false, "error": ...}`) and changes
nothing; the loop goes on.

A connection that sends no full request within `IDLE_TIMEOUT_S` is closed, so idle ones cannot
pile up. When the process runs out of descriptors (EMFILE, ENFILE), the oldest waiting
connections are shed to make room; with none to shed, accepting pauses for a moment.
"""

from __future__ import annotations

import errno
import itertools
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
from easyflow_cli.runtime.clock import Clock
from easyflow_cli.runtime.daemon.throttled_log import ThrottledWarning
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
# Our clients send their request as soon as they are connected; one that has said nothing
# complete for this long is not going to.
IDLE_TIMEOUT_S = 10.0
# Out of descriptors: shed this many waiting connections at once, so the database and the
# workers' pipes have room too, not only the next connection.
SHED_AT_ONCE = 32
# Out of descriptors with no connection to shed: stop accepting for this long.
ACCEPT_PAUSE_S = 0.1
OUT_OF_DESCRIPTORS = (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM)

Handlers = dict[type, Callable[[Any], Reply]]


class ControlServer:
    def __init__(self, path: Path, selector: selectors.BaseSelector, handlers: Handlers,
                 clock: Clock) -> None:
        self.path = path
        self.selector = selector
        self.handlers = handlers
        self.clock = clock
        self.listener: socket.socket | None = None
        # Connections waiting for their request, oldest first, with when they expire
        # (monotonic): all get the same timeout, so the first one is the next to expire.
        self.waiting: dict[socket.socket, float] = {}
        self.paused_until: float | None = None  # monotonic: accepting resumes then
        self.refused = ThrottledWarning(log, clock, "refused %d connection(s) from another user")
        self.short = ThrottledWarning(log, clock, "out of file descriptors %d time(s) accepting "
                                      "connections: shedding the oldest waiting ones")

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
        for conn in list(self.waiting):
            self.drop(conn)
        if self.listener is not None:
            self.listener.close()
            self.path.unlink(missing_ok=True)

    def accept(self, listener: socket.socket) -> bool:
        try:
            conn, _ = listener.accept()
        except OSError as exc:
            if exc.errno in OUT_OF_DESCRIPTORS:
                self._out_of_descriptors()
            return True  # EAGAIN: another took it; ECONNABORTED: the client gave up
        if not _peer_allowed(conn):
            self.refused.happened()
            conn.close()
            return True
        conn.setblocking(False)
        reader = _RequestReader(self)
        self.selector.register(conn, selectors.EVENT_READ, reader.on_readable)
        self.waiting[conn] = self.clock.monotonic() + IDLE_TIMEOUT_S
        # A client sends its request right after connecting: answering it now saves a turn of
        # the loop (and its scheduling queries) on a real-time run's way to its worker.
        reader.on_readable(conn)
        return True

    def drop(self, conn: socket.socket) -> None:
        """Stop waiting on a connection and close it."""
        self.waiting.pop(conn, None)
        self.selector.unregister(conn)
        conn.close()

    def _out_of_descriptors(self) -> None:
        self.short.happened()
        oldest = list(itertools.islice(self.waiting, SHED_AT_ONCE))
        for conn in oldest:
            self.drop(conn)
        if not oldest and self.listener is not None and self.paused_until is None:
            self.selector.unregister(self.listener)
            self.paused_until = self.clock.monotonic() + ACCEPT_PAUSE_S

    def tend(self) -> None:
        """Close connections past their idle timeout, resume accepting after a pause, log
        what the throttled warnings counted."""
        now = self.clock.monotonic()
        expired = list(itertools.takewhile(lambda item: item[1] <= now, self.waiting.items()))
        for conn, _ in expired:
            self.drop(conn)
        if self.paused_until is not None and now >= self.paused_until:
            self.paused_until = None
            if self.listener is not None:
                self.selector.register(self.listener, selectors.EVENT_READ, self.accept)
        self.refused.flush_if_due()
        self.short.flush_if_due()

    def next_due(self) -> float | None:
        """When `tend` has something to do (monotonic), if ever."""
        due = [self.paused_until, self.refused.due_at(), self.short.due_at(),
               next(iter(self.waiting.values()), None)]
        return min((moment for moment in due if moment is not None), default=None)

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
        self.server.waiting.pop(conn, None)
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
