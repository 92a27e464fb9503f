"""What root may trust on disk: files and directories only it can change, and state files
opened without following a link someone else could have planted.

Like cron and sshd, root refuses what another user could have written: that user would
otherwise choose what root runs (a workflow file, a database naming one) or where root writes
(a lock or log that is a link to /etc/passwd).
"""

from __future__ import annotations

import os
import stat
from collections.abc import Mapping
from pathlib import Path

from easyflow_cli.core.errors import BadInput

PRIVATE_MODE = 0o600
# Where systemd/easyflow.service keeps the system service's state (StateDirectory=easyflow).
SERVICE_STATE_DIR = Path("/var/lib/easyflow")


class UntrustedPath(BadInput):
    """A state directory or state file easyflow must not use; the message names the fix."""


def untrusted_because(info: os.stat_result, owner: int = 0) -> list[str]:
    """Why a file or directory with this status could be changed by someone other than `owner`."""
    reasons = []
    if info.st_uid != owner:
        reasons.append(f"owned by uid {info.st_uid}, not {user_name(owner)}")
    if info.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        reasons.append(f"writable by group or others (mode {stat.S_IMODE(info.st_mode):04o})")
    return reasons


def user_name(uid: int) -> str:
    import pwd  # here: only a refusal needs it

    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return f"uid {uid}"


def check_state_dir(home: Path) -> None:
    """As root, refuse a state directory that anyone but root can change.

    Another user's state directory is refused too, naming how to act as that user instead: a
    run started there would run that user's workflow as root, and files root leaves there
    (its log, the database's -wal and -shm) would lock that user out of their own state.
    """
    if os.geteuid() != 0:
        return
    info = os.stat(home)
    if info.st_uid != 0 and not info.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        owner = user_name(info.st_uid)
        raise UntrustedPath(
            f"state directory {home} belongs to {owner}; as root easyflow does not act in "
            f"another user's state directory: run it as that user (sudo -u {owner} "
            f"EASYFLOW_HOME={home} easyflow ...), or let that user's daemon run it")
    check_private_dir(home)


def check_private_dir(directory: Path) -> None:
    """As root, refuse a directory of the state (or a link to one) others could change."""
    if os.geteuid() != 0:
        return
    reasons = untrusted_because(os.stat(directory))
    link = os.lstat(directory)
    if stat.S_ISLNK(link.st_mode) and link.st_uid != 0:
        reasons.append(f"a symbolic link owned by uid {link.st_uid}")
    if reasons:
        raise UntrustedPath(
            f"state directory {directory} is {reasons[0]}; as root easyflow only uses a "
            f"state directory that only root can change (chown root {directory}; "
            f"chmod go-w {directory})")


def service_user_beside(environ: Mapping[str, str]) -> str | None:
    """As root in root's own default state directory: the user owning the system service's
    state on this machine, if there is one, for saying that root is not running as them."""
    if os.geteuid() != 0 or environ.get("EASYFLOW_HOME") or environ.get("STATE_DIRECTORY"):
        return None
    try:
        owner = os.stat(SERVICE_STATE_DIR).st_uid
    except OSError:
        return None
    return user_name(owner) if owner != 0 else None


def open_private(path: Path, flags: int) -> int:
    """A descriptor on the regular file `path`, refusing a symbolic link (not followed) or a
    file with another owner or a second name (a hard link planted to a file elsewhere)."""
    try:
        fd = os.open(path, flags | os.O_NOFOLLOW | os.O_CLOEXEC, PRIVATE_MODE)
    except OSError as exc:
        if path.is_symlink():
            raise UntrustedPath(f"{path} is a symbolic link; easyflow does not follow links "
                                "in its state directory (remove it)") from None
        raise exc
    try:
        _check_private(path, os.fstat(fd))
    except BaseException:
        os.close(fd)
        raise
    return fd


def create_or_reopen(path: Path, flags: int) -> int:
    """`path` created exclusively (O_EXCL); if it exists, reopened only when it is our own
    private file, so a run re-queued after a restart appends to the log it began."""
    try:
        return open_private(path, flags | os.O_CREAT | os.O_EXCL)
    except FileExistsError:
        return open_private(path, flags)


def _check_private(path: Path, info: os.stat_result) -> None:
    if not stat.S_ISREG(info.st_mode):
        raise UntrustedPath(f"{path} is not a regular file (remove it)")
    if info.st_uid != os.geteuid():
        raise UntrustedPath(f"{path} is owned by {user_name(info.st_uid)}, not "
                            f"{user_name(os.geteuid())} (remove it)")
    if info.st_nlink != 1:
        raise UntrustedPath(f"{path} has {info.st_nlink} hard links; easyflow only writes "
                            "files in its state directory that have no other name (remove it)")


def check_secret_file(path: str, info: os.stat_result) -> None:
    """As root, refuse a secret file another user could have written or can read: as sshd does
    a private key."""
    if os.geteuid() != 0:
        return
    reasons = [] if info.st_uid == 0 else [f"owned by uid {info.st_uid}, not root"]
    if info.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
        reasons.append(f"open to group or others (mode {stat.S_IMODE(info.st_mode):04o})")
    if reasons:
        raise UntrustedPath(f"{path} is {reasons[0]}; as root easyflow only reads a secret file "
                            f"that only root can read and change (chown root {path}; "
                            f"chmod 600 {path})")
