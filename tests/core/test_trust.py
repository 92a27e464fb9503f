"""What root trusts on disk: state directories only it can change, files opened without links."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from easyflow_cli.core import trust
from easyflow_cli.core.paths import ensure_state_dir
from easyflow_cli.core.trust import (
    UntrustedPath,
    check_state_dir,
    create_or_reopen,
    open_private,
    untrusted_because,
)

NOBODY = 65534
as_root = pytest.mark.skipif(os.geteuid() != 0, reason="needs root")


def precious(tmp_path: Path) -> Path:
    target = tmp_path / "precious"
    target.write_text("keep me\n")
    return target


def test_reasons_name_the_owner_and_the_mode(tmp_path):
    path = tmp_path / "f"
    path.write_text("")
    path.chmod(0o664)
    info = os.stat(path)
    assert untrusted_because(info, info.st_uid) == ["writable by group or others (mode 0664)"]
    assert untrusted_because(info, info.st_uid + 1)[0].startswith(f"owned by uid {info.st_uid}")


def test_a_symlink_is_not_followed_and_its_target_is_untouched(tmp_path):
    target = precious(tmp_path)
    link = tmp_path / "daemon.lock"
    link.symlink_to(target)
    with pytest.raises(UntrustedPath, match="is a symbolic link"):
        open_private(link, os.O_RDWR | os.O_CREAT | os.O_TRUNC)
    with pytest.raises(UntrustedPath, match="is a symbolic link"):
        create_or_reopen(link, os.O_WRONLY | os.O_APPEND)
    assert target.read_text() == "keep me\n"


def test_a_hard_link_to_another_file_is_refused(tmp_path):
    target = precious(tmp_path)
    link = tmp_path / "7.log"
    os.link(target, link)
    with pytest.raises(UntrustedPath, match="2 hard links"):
        create_or_reopen(link, os.O_WRONLY | os.O_APPEND)
    assert target.read_text() == "keep me\n"


@as_root
def test_a_file_of_another_owner_is_refused(tmp_path):
    theirs = tmp_path / "7.log"
    theirs.write_text("")
    os.chown(theirs, NOBODY, NOBODY)
    with pytest.raises(UntrustedPath, match="is owned by nobody, not root"):
        create_or_reopen(theirs, os.O_WRONLY | os.O_APPEND)


def test_a_new_file_is_created_private_and_an_own_one_reopened(tmp_path):
    path = tmp_path / "1.log"
    fd = create_or_reopen(path, os.O_WRONLY | os.O_APPEND)
    os.write(fd, b"first attempt\n")
    os.close(fd)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    fd = create_or_reopen(path, os.O_WRONLY | os.O_APPEND)  # the run re-queued and run again
    os.write(fd, b"second attempt\n")
    os.close(fd)
    assert path.read_text() == "first attempt\nsecond attempt\n"


@as_root
@pytest.mark.parametrize("where", ["home", "logs"])
def test_root_refuses_a_state_directory_others_can_write(tmp_path, where):
    home = ensure_state_dir(tmp_path / "home")
    (home if where == "home" else home / "logs").chmod(0o777)
    directory = home if where == "home" else home / "logs"
    with pytest.raises(UntrustedPath, match=f"{directory} is writable by group or others "
                                            r"\(mode 0777\).*chmod go-w"):
        ensure_state_dir(home)


@as_root
def test_root_refuses_another_users_state_directory_naming_how_to_be_them(tmp_path):
    home = ensure_state_dir(tmp_path / "home")
    os.chown(home, NOBODY, NOBODY)
    with pytest.raises(UntrustedPath) as refused:
        ensure_state_dir(home)
    assert f"state directory {home} belongs to nobody" in str(refused.value)
    assert f"sudo -u nobody EASYFLOW_HOME={home} easyflow" in str(refused.value)


@as_root
def test_root_refuses_logs_that_are_a_link_another_user_planted(tmp_path):
    home = ensure_state_dir(tmp_path / "home")
    (home / "logs").rmdir()
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir(mode=0o700)
    (home / "logs").symlink_to(elsewhere)
    os.lchown(home / "logs", NOBODY, NOBODY)
    with pytest.raises(UntrustedPath, match="a symbolic link owned by uid 65534"):
        ensure_state_dir(home)


@as_root
def test_root_accepts_its_own_owner_only_state_directory(tmp_path):
    home = ensure_state_dir(tmp_path / "home")
    check_state_dir(home)
    assert stat.S_IMODE(home.stat().st_mode) == 0o700


def test_without_root_the_state_directory_is_not_checked(tmp_path, monkeypatch):
    """Another user's state only ever runs with that user's rights: nothing to escalate to."""
    home = ensure_state_dir(tmp_path / "home")
    home.chmod(0o777)
    monkeypatch.setattr(trust.os, "geteuid", lambda: 1000)
    assert ensure_state_dir(home) == home
