"""Where state lives: `$EASYFLOW_HOME`, else systemd's `$STATE_DIRECTORY`, else the XDG data dir."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from easyflow_cli.core.trust import check_private_dir, check_state_dir


def state_dir(environ: Mapping[str, str] | None = None) -> Path:
    env = os.environ if environ is None else environ
    if env.get("EASYFLOW_HOME"):
        return Path(env["EASYFLOW_HOME"])
    if env.get("STATE_DIRECTORY"):
        # systemd may pass several colon-separated directories; the first is ours.
        return Path(env["STATE_DIRECTORY"].split(":")[0])
    data_home = env.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(data_home) / "easyflow"


def ensure_state_dir(path: Path) -> Path:
    """Create the state directory owner-only (0700); its files inherit the privacy. As root,
    one that anyone else can change is refused (`trust.check_state_dir`)."""
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    check_state_dir(path)
    ensure_private_dir(path / "logs")
    return path


def ensure_private_dir(path: Path) -> Path:
    """A directory of the state, owner-only; as root, refused if others can change it."""
    path.mkdir(exist_ok=True, mode=0o700)
    check_private_dir(path)
    return path


def database_path(home: Path) -> Path:
    return home / "easyflow.db"


def socket_path(home: Path) -> Path:
    return home / "easyflow.sock"


def logs_dir(home: Path) -> Path:
    return home / "logs"


def run_log_path(home: Path, run_id: int) -> Path:
    return logs_dir(home) / f"{run_id}.log"
