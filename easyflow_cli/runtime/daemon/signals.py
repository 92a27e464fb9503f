"""Signals as flags: SIGTERM and SIGINT ask to stop, SIGHUP to reload. The handlers only set
the flags; a wake-up pipe ends the loop's sleep, and the loop acts on them (the daemon's and a
cluster's coordinator's alike)."""

from __future__ import annotations

import os
import signal
from types import FrameType
from typing import Protocol


class SignalFlags(Protocol):
    stop_requested: bool
    reload_requested: bool


def install_signals(flags: SignalFlags) -> int:
    """Route the signals to `flags`; the read end of the wake-up pipe, for the loop's selector
    (read it empty with `drain_signals`)."""
    read_end, write_end = os.pipe()
    os.set_blocking(read_end, False)
    os.set_blocking(write_end, False)
    signal.set_wakeup_fd(write_end)

    def on_stop(signum: int, frame: FrameType | None) -> None:
        flags.stop_requested = True

    def on_reload(signum: int, frame: FrameType | None) -> None:
        flags.reload_requested = True

    signal.signal(signal.SIGTERM, on_stop)
    signal.signal(signal.SIGINT, on_stop)
    signal.signal(signal.SIGHUP, on_reload)
    return read_end


def drain_signals(read_end: int) -> None:
    try:
        while os.read(read_end, 512):
            pass
    except BlockingIOError:
        pass
