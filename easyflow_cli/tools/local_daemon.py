"""A daemon this process starts and stops itself, on a state directory it names.

`easyflow demo` and `easyflow bench` both need one: a real `easyflow daemon` in a child process,
with a config file of their own, its output in a log file, stopped with SIGTERM like systemd
would stop it.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

# Inherited variables that would change how a daemon started here behaves.
SCRUBBED_ENV = ("REALTIME_MAX_WORKERS", "BALANCED_MAX_WORKERS", "ECO_MAX_WORKERS",
                "STATE_DIRECTORY", "NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID")


def daemon_environment(home: Path) -> dict[str, str]:
    """This environment, minus what would change the daemon's behaviour, serving `home`."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("EASYFLOW_") and k not in SCRUBBED_ENV}
    env["EASYFLOW_HOME"] = str(home)
    return env


def start_daemon(home: Path, config_path: Path, log_path: Path) -> subprocess.Popen:
    """`easyflow daemon --config CONFIG` on `home`, its output appended to `log_path`."""
    with open(log_path, "ab") as log:
        return subprocess.Popen(
            [sys.executable, "-m", "easyflow_cli", "daemon", "--config", str(config_path)],
            env=daemon_environment(home), stdin=subprocess.DEVNULL, stdout=log, stderr=log)


def stop_daemon(proc: subprocess.Popen, timeout: float = 30.0) -> int:
    """SIGTERM (the daemon drains), SIGKILL if it has not exited in `timeout`; its status."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
    try:
        return proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        return proc.wait()
