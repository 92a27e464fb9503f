"""Minimal, dependency-free sd_notify(3) client and journal-friendly log formatting."""

from __future__ import annotations

import logging
import os
import socket
import time
from collections.abc import Mapping
from dataclasses import dataclass

__all__ = ["JournalFormatter", "Notifier", "journal_log_prefix", "running_under_systemd"]


@dataclass(frozen=True)
class Notifier:
    """Sends state notifications to the service manager over ``$NOTIFY_SOCKET``."""

    socket_path: str | None = None
    watchdog_usec: int | None = None
    watchdog_pid: int | None = None

    @classmethod
    def from_env(cls, environ: Mapping[str, str] = os.environ) -> Notifier:
        """Build a notifier from ``NOTIFY_SOCKET``, ``WATCHDOG_USEC`` and ``WATCHDOG_PID``."""
        return cls(
            socket_path=environ.get("NOTIFY_SOCKET") or None,
            watchdog_usec=_parse_int(environ.get("WATCHDOG_USEC")),
            watchdog_pid=_parse_int(environ.get("WATCHDOG_PID")),
        )

    @property
    def enabled(self) -> bool:
        """True when there is a notify socket to talk to."""
        return self._address() is not None

    def _address(self) -> str | bytes | None:
        path = self.socket_path
        # systemd only ever hands out absolute paths or abstract names; anything else is bogus.
        if not path or path[0] not in "/@":
            return None
        if path[0] == "@":
            return b"\0" + path[1:].encode()
        return path

    def notify(self, *lines: str) -> bool:
        """Send ``lines`` as one newline-joined datagram; False when not sent."""
        address = self._address()
        if address is None or not lines:
            return False
        payload = "\n".join(lines).encode()
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
                sock.sendto(payload, address)
        except OSError:
            # The daemon must keep running even if the manager's socket disappeared.
            return False
        return True

    def ready(self, status: str | None = None) -> bool:
        """Report start-up finished, optionally with a status line."""
        lines = ["READY=1"]
        if status is not None:
            lines.append(_status_line(status))
        return self.notify(*lines)

    def status(self, text: str) -> bool:
        """Update the free-form status shown by ``systemctl status``."""
        return self.notify(_status_line(text))

    def stopping(self) -> bool:
        """Report that shutdown (draining) has begun."""
        return self.notify("STOPPING=1")

    def reloading(self) -> bool:
        """Report that a configuration reload has begun; follow with :meth:`ready` when done."""
        # MONOTONIC_USEC lets systemd >= 253 (Type=notify-reload) match this reload to
        # the signal it sent; older managers ignore the unknown field.
        usec = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
        return self.notify("RELOADING=1", f"MONOTONIC_USEC={usec}")

    def watchdog(self) -> bool:
        """Ping the service watchdog."""
        return self.notify("WATCHDOG=1")

    @property
    def watchdog_interval(self) -> float | None:
        """Seconds between watchdog pings (half the timeout), or None when not requested."""
        if not self.watchdog_usec or self.watchdog_usec <= 0:
            return None
        # A child that merely inherited the environment must not ping on our behalf.
        if self.watchdog_pid is not None and self.watchdog_pid != os.getpid():
            return None
        return self.watchdog_usec / 2 / 1_000_000


def _parse_int(value: str | None) -> int | None:
    if value is None:
        return None
    try:
        return int(value.strip())
    except ValueError:
        return None


def _status_line(text: str) -> str:
    # A newline would end the STATUS= assignment and inject arbitrary protocol fields.
    return "STATUS=" + " ".join(text.splitlines())


def journal_log_prefix(level: int) -> str:
    """Return the ``<N>`` syslog priority prefix understood by the journal for ``level``."""
    if level >= logging.CRITICAL:
        priority = 2
    elif level >= logging.ERROR:
        priority = 3
    elif level >= logging.WARNING:
        priority = 4
    elif level >= logging.INFO:
        priority = 6
    else:
        priority = 7
    return f"<{priority}>"


def running_under_systemd(environ: Mapping[str, str] = os.environ) -> bool:
    """True when stdout/stderr most likely end up in the journal."""
    return bool(environ.get("JOURNAL_STREAM") or environ.get("INVOCATION_ID"))


class JournalFormatter(logging.Formatter):
    """``<6>message`` under systemd (the journal adds timestamps), else a timestamped line."""

    PLAIN_FORMAT = "%(asctime)s %(levelname)s %(message)s"
    DATE_FORMAT = "%Y-%m-%d %H:%M:%S"

    def __init__(
        self, environ: Mapping[str, str] | None = None, *, journal: bool | None = None
    ) -> None:
        if journal is None:
            journal = running_under_systemd(os.environ if environ is None else environ)
        self.journal = journal
        if journal:
            super().__init__("%(message)s")
        else:
            super().__init__(self.PLAIN_FORMAT, self.DATE_FORMAT)

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        if not self.journal:
            return text
        prefix = journal_log_prefix(record.levelno)
        # The journal reads stdout line by line, so each traceback line needs its own
        # prefix or it would be logged at the unit's default priority.
        return "\n".join(prefix + line for line in text.split("\n"))
