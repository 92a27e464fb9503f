"""Security: steps are argv, root trusts only root's files, state is owner-only, the socket checks
its peer, and a step sees a minimal environment plus what its workflow declares.

The daemon tests share one daemon (small pools) in a private directory under /tmp, so that a
child that dropped to `nobody` can reach its socket once the test opens the file modes: then only
the SO_PEERCRED check stands between that child and the daemon.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import socket
import sqlite3
import stat
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
import tomli_w
from typer.testing import CliRunner

from easyflow_cli.cli.main import app
from easyflow_cli.core import trust, workflow_files
from easyflow_cli.core.workflow_files import parse_workflow_file
from easyflow_cli.storage.store import Store
from tests.conftest import easyflow_command, subprocess_env
from tests.daemon_harness import DaemonHarness, wait_for
from tests.e2e.test_hostile import assert_one_clear_line, fingerprint

NOBODY = 65534
SECRET = "EASYFLOW_TEST_SECRET"
runner = CliRunner()
as_root = pytest.mark.skipif(os.geteuid() != 0, reason="needs root")


def invoke(home: Path, *args: str, **env: str | None):
    return runner.invoke(app, list(args), env={"EASYFLOW_HOME": str(home),
                                               "EASYFLOW_CONFIG": None, **env})


def write_workflow(directory: Path, name: str, *steps: dict, mode: int = 0o644) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{name}.toml"
    path.write_text(tomli_w.dumps({"name": name, "steps": list(steps)}))
    path.chmod(mode)
    return path


def mode_of(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def seeded(home: Path, tmp_path: Path) -> Path:
    """A state directory with one registered workflow, so "unchanged" means something."""
    path = write_workflow(tmp_path / "seed", "seed", {"run": ["true"]})
    assert invoke(home, "workflow", "add", str(path)).exit_code == 0
    return home


# ---------------------------------------------------------------------- argv, never a shell


def test_a_step_string_is_split_not_given_to_a_shell(home, tmp_path):
    marker = tmp_path / "pwned"
    path = write_workflow(tmp_path / "wf", "argv",
                          {"name": "subst", "run": f"echo $(touch {marker}) `touch {marker}`"},
                          {"name": "chain", "run": ["echo", f"; touch {marker}"]})
    assert invoke(home, "workflow", "add", str(path)).exit_code == 0
    result = invoke(home, "run", "argv", "--now")
    assert result.exit_code == 0, result.output
    assert f"$(touch {marker})" in result.stdout and f"; touch {marker}" in result.stdout
    assert not marker.exists()


def test_only_shell_true_uses_a_shell(home, tmp_path):
    """The control for the test above: the same command with `shell = true` does run touch."""
    marker = tmp_path / "made"
    path = write_workflow(tmp_path / "wf", "shell",
                          {"run": f"echo $(touch {marker})", "shell": True})
    assert invoke(home, "workflow", "add", str(path)).exit_code == 0
    assert invoke(home, "run", "shell", "--now").exit_code == 0
    assert marker.exists()


@pytest.mark.parametrize("args", [
    ["run", "seed; touch {marker}", "--now"],
    ["run", "seed", "--now", "--deadline", "30m; touch {marker}"],
    ["run", "seed", "--now", "--deadline", "$(touch {marker})"],
    ["schedule", "add", "seed", "--cron", "0 2 * * *; touch {marker}"],
    ["schedule", "add", "seed", "--every", "1h`touch {marker}`"],
    ["schedule", "add", "seed", "--every", "1h", "--timezone", "UTC; touch {marker}"],
    ["report", "costs", "--since", "7d; touch {marker}"],
], ids=["name", "deadline", "deadline-subst", "cron", "every", "timezone", "since"])
def test_cli_values_are_never_spliced_into_a_command(seeded, tmp_path, args):
    marker = tmp_path / "pwned"
    before = fingerprint(seeded)
    result = invoke(seeded, *[a.format(marker=marker) for a in args])
    assert result.exit_code == 2
    assert_one_clear_line(result.stderr)
    assert not marker.exists()
    assert fingerprint(seeded) == before


def test_values_reach_a_step_as_data(home, tmp_path):
    """A declared env value full of shell syntax arrives verbatim and runs nothing."""
    marker = tmp_path / "pwned"
    value = f"$(touch {marker}); touch {marker} `touch {marker}`"
    path = write_workflow(tmp_path / "wf", "data",
                          {"run": ["printenv", "PAYLOAD"], "env": {"PAYLOAD": value}})
    assert invoke(home, "workflow", "add", str(path)).exit_code == 0
    result = invoke(home, "run", "data", "--now")
    assert result.exit_code == 0, result.output
    assert value in result.stdout
    assert not marker.exists()


# ---------------------------------------------------------------------- root trusts root's files


@as_root
@pytest.mark.parametrize(("file_mode", "dir_mode", "reason"), [
    (0o664, 0o755, "is writable by group or others (mode 0664)"),
    (0o646, 0o755, "is writable by group or others (mode 0646)"),
    (0o644, 0o775, "which is writable by group or others (mode 0775)"),
    (0o644, 0o777, "which is writable by group or others (mode 0777)"),
    (0o644, 0o1777, "which is writable by group or others (mode 1777)"),
], ids=["file-g+w", "file-o+w", "dir-g+w", "dir-o+w", "dir-sticky-o+w"])
def test_root_refuses_workflow_files_others_can_change(seeded, tmp_path, file_mode, dir_mode,
                                                       reason):
    directory = tmp_path / "shared"
    path = write_workflow(directory, "loose", {"run": ["true"]}, mode=file_mode)
    directory.chmod(dir_mode)
    before = fingerprint(seeded)
    result = invoke(seeded, "workflow", "add", str(path))
    assert result.exit_code == 2
    assert_one_clear_line(result.stderr, f"error: {path}: ", reason, "chmod go-w")
    assert fingerprint(seeded) == before


@as_root
def test_root_refuses_a_whole_directory_when_it_is_writable_by_others(seeded, tmp_path):
    directory = tmp_path / "shared"
    write_workflow(directory, "loose", {"run": ["true"]})
    directory.chmod(0o777)
    before = fingerprint(seeded)
    result = invoke(seeded, "workflow", "add", str(directory))
    assert result.exit_code == 2
    assert_one_clear_line(result.stderr, f"{directory / 'loose.toml'}: ", "mode 0777")
    assert fingerprint(seeded) == before


@as_root
def test_root_refuses_workflow_files_owned_by_another_user(seeded, tmp_path):
    path = write_workflow(tmp_path / "theirs", "theirs", {"run": ["true"]})
    os.chown(path, NOBODY, NOBODY)
    before = fingerprint(seeded)
    result = invoke(seeded, "workflow", "add", str(path))
    assert result.exit_code == 2
    assert_one_clear_line(result.stderr, f"{path}: ", f"owned by uid {NOBODY}, not root")
    assert fingerprint(seeded) == before


@as_root
def test_root_accepts_files_only_root_can_change(home, tmp_path):
    path = write_workflow(tmp_path / "mine", "mine", {"run": ["true"]}, mode=0o600)
    assert invoke(home, "workflow", "add", str(path)).exit_code == 0


def test_without_root_the_modes_are_not_checked(tmp_path, monkeypatch):
    """Another user's daemon runs steps with that user's rights: nothing to escalate to."""
    directory = tmp_path / "shared"
    path = write_workflow(directory, "loose", {"run": ["true"]}, mode=0o666)
    directory.chmod(0o777)
    monkeypatch.setattr(workflow_files.os, "geteuid", lambda: 1000)
    assert parse_workflow_file(path).name == "loose"


def test_a_workflow_path_that_is_not_a_regular_file_is_refused(seeded, tmp_path):
    fifo = tmp_path / "pipe.toml"
    os.mkfifo(fifo)
    before = fingerprint(seeded)
    result = invoke(seeded, "workflow", "add", str(fifo))
    assert result.exit_code == 2
    assert_one_clear_line(result.stderr, f"{fifo}: is not a regular file")
    assert fingerprint(seeded) == before


# ---------------------------------------------------------------------- owner-only state


def test_state_is_owner_only_after_a_foreground_run(home, tmp_path):
    path = write_workflow(tmp_path / "wf", "hello", {"run": ["echo", "hello"]})
    assert invoke(home, "workflow", "add", str(path)).exit_code == 0
    assert invoke(home, "run", "hello", "--now").exit_code == 0
    assert mode_of(home) == 0o700
    assert mode_of(home / "logs") == 0o700
    assert mode_of(home / "easyflow.db") == 0o600
    for extra in ("easyflow.db-wal", "easyflow.db-shm"):
        if (home / extra).exists():
            assert mode_of(home / extra) == 0o600, extra
    logs = list((home / "logs").iterdir())
    assert logs and all(mode_of(log) == 0o600 for log in logs)


def test_environment_of_a_foreground_step(home, tmp_path):
    path = write_workflow(tmp_path / "wf", "envdump",
                          {"run": ["env"], "env": {"DECLARED": "yes"}})
    assert invoke(home, "workflow", "add", str(path)).exit_code == 0
    result = invoke(home, "run", "envdump", "--now", **{SECRET: "x"})
    assert result.exit_code == 0, result.output
    assert_minimal_environment(result.stdout)


def assert_minimal_environment(output: str) -> None:
    names = {line.split("=", 1)[0] for line in output.splitlines() if "=" in line}
    assert "DECLARED=yes" in output.splitlines()
    assert "PATH" in names
    assert SECRET not in output
    # The only variables easyflow adds itself: the run's mark, which run this is and the token
    # of whoever executes it (none of the daemon's own).
    mark = {"EASYFLOW_RUN_ID", "EASYFLOW_DAEMON_TOKEN"}
    assert {n for n in names if n.startswith("EASYFLOW_")} == mark, names
    assert names <= {"PATH", "HOME", "LANG", "LC_ALL", "TZ", "USER", "LOGNAME", "TMPDIR",
                     "DECLARED", *mark}, names


# ---------------------------------------------------------------------- through the daemon

DAEMON_CONFIG = """
[pools.real-time]
workers = 1

[pools.balanced]
workers = 1

[pools.eco]
workers = 1
off_peak = ""
"""


@pytest.fixture(scope="module")
def running_daemon() -> Iterator[DaemonHarness]:
    """One daemon for this module, started with a secret in its environment."""
    root = Path(tempfile.mkdtemp(prefix="easyflow-security-", dir="/tmp"))
    harness = DaemonHarness(root)
    try:
        harness.write_config(DAEMON_CONFIG)
        path = harness.workflow_dir / "envdump.toml"
        path.write_text(tomli_w.dumps({"name": "envdump", "steps": [
            {"run": ["env"], "env": {"DECLARED": "yes"}}]}))
        harness.cli("workflow", "add", str(path))
        harness.start(**{SECRET: "x"})
        yield harness
        harness.stop()
    finally:
        harness.kill()
        shutil.rmtree(root, ignore_errors=True)


def ask(path: Path, request: dict) -> bytes:
    """Send one request line; everything the daemon sends back before it closes.

    A daemon that closes without reading what we sent resets the connection: that ends the
    reply as surely as a clean close does. Failing to connect raises.
    """
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(10)
        sock.connect(str(path))
        reply = b""
        with contextlib.suppress(ConnectionResetError, BrokenPipeError):
            sock.sendall(json.dumps(request).encode() + b"\n")
            while chunk := sock.recv(65536):
                reply += chunk
        return reply


def ask_as(uid: int, path: Path, request: dict) -> str:
    """`ask` from a forked child that dropped to `uid`: "reply:<bytes>" or "error:<name>"."""
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: never return into pytest
        code = 0
        try:
            os.close(read_end)
            os.setgroups([])
            os.setgid(uid)
            os.setuid(uid)
            try:
                outcome = "reply:" + ask(path, request).decode(errors="replace")
            except OSError as exc:
                outcome = f"error:{type(exc).__name__}"
            os.write(write_end, outcome.encode())
        except BaseException:
            code = 1
        finally:
            os._exit(code)
    os.close(write_end)
    with os.fdopen(read_end, "rb") as pipe:
        outcome = pipe.read().decode()
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0, outcome
    return outcome


@contextlib.contextmanager
def opened_up(*paths_and_modes: tuple[Path, int]) -> Iterator[None]:
    """Loosen file modes for the duration, then put the owner-only ones back."""
    saved = [(path, mode_of(path)) for path, _ in paths_and_modes]
    try:
        for path, mode in paths_and_modes:
            path.chmod(mode)
        yield
    finally:
        for path, mode in saved:
            path.chmod(mode)


@pytest.mark.e2e
@as_root
def test_socket_refuses_other_users_by_peer_credentials(running_daemon):
    home, sock = running_daemon.home, running_daemon.home / "easyflow.sock"
    assert json.loads(ask(sock, {"op": "status"}))["pid"] == running_daemon.pid

    # As shipped the file modes already keep `nobody` out...
    assert ask_as(NOBODY, sock, {"op": "status"}) == "error:PermissionError"
    # ...and with them opened up, the daemon itself closes without a word.
    with opened_up((running_daemon.root, 0o711), (home, 0o711), (sock, 0o666)):
        assert ask_as(NOBODY, sock, {"op": "status"}) == "reply:"
        assert ask_as(NOBODY, sock, {"op": "cancel", "id": 1}) == "reply:"
    wait_for(lambda: refusals_logged(running_daemon)[0] >= 2, timeout=30,
             message="the refusals in the daemon's log")
    assert json.loads(ask(sock, {"op": "status"}))["pid"] == running_daemon.pid


REFUSED = re.compile(r"refused (\d+) connection\(s\) from another user")


def refusals_logged(daemon: DaemonHarness) -> tuple[int, int]:
    """How many refusals the daemon's log counts, and in how many lines."""
    counts = [int(n) for n in REFUSED.findall(daemon.log_text())]
    return sum(counts), len(counts)


def connect_as(uid: int, path: Path, times: int) -> None:
    """Connect `times` times from a forked child that dropped to `uid`, saying nothing."""
    pid = os.fork()
    if pid == 0:  # the child: never return into pytest
        code = 1
        try:
            os.setgroups([])
            os.setgid(uid)
            os.setuid(uid)
            for _ in range(times):
                with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
                    sock.connect(str(path))
            code = 0
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0


@pytest.mark.e2e
@as_root
def test_refused_peers_are_logged_a_line_per_interval_with_a_count(running_daemon):
    home, sock = running_daemon.home, running_daemon.home / "easyflow.sock"
    counted, lines = refusals_logged(running_daemon)
    with opened_up((running_daemon.root, 0o711), (home, 0o711), (sock, 0o666)):
        connect_as(NOBODY, sock, 2000)
    wait_for(lambda: refusals_logged(running_daemon)[0] >= counted + 2000, timeout=30,
             message="the daemon's log to count 2,000 more refusals")
    assert refusals_logged(running_daemon)[1] - lines <= 3, running_daemon.log_tail()
    assert json.loads(ask(sock, {"op": "status"}))["pid"] == running_daemon.pid


@pytest.mark.e2e
def test_daemon_state_is_owner_only(running_daemon):
    home = running_daemon.home
    assert mode_of(home) == 0o700 and mode_of(home / "logs") == 0o700
    for name in ("easyflow.sock", "daemon.lock", "easyflow.db"):
        assert mode_of(home / name) == 0o600, name
    assert stat.S_ISSOCK((home / "easyflow.sock").stat().st_mode)


@pytest.mark.e2e
def test_environment_of_a_step_run_by_the_daemon(running_daemon):
    record = running_daemon.submit("envdump")
    done = running_daemon.wait_for_state(record["id"], "succeeded", "failed", timeout=30)
    assert done["state"] == "succeeded", done
    assert_minimal_environment(running_daemon.cli("logs", str(record["id"])).stdout)
    assert mode_of(Path(done["log_path"])) == 0o600


def send_raw(path: Path, data: bytes) -> bytes:
    """Send `data` as it is, then read until the daemon closes."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(10)
        sock.connect(str(path))
        reply = b""
        with contextlib.suppress(ConnectionResetError, BrokenPipeError):
            sock.sendall(data)
            sock.shutdown(socket.SHUT_WR)
            while chunk := sock.recv(65536):
                reply += chunk
        return reply


HOSTILE_REQUESTS = [
    b"garbage\n", b"[]\n", b'"status"\n', b"null\n", b"\xff\xfe\n", b'{"op": 5}\n',
    b'{"op": "cancel"}\n', b'{"op": "cancel", "id": null}\n', b'{"op": "cancel", "id": "1"}\n',
    b'{"op": "cancel", "id": true}\n', b'{"op": "cancel", "id": 1.5}\n',
    b'{"op": "cancel", "id": 99999999999999999999999}\n', b"[" * 50_000 + b"\n",
    b"x" * 200_000,
]


# What clients before the published policy sent, and junk in its place: a wake-up all the same.
OLD_WAKE_UPS = [
    b'{"op": "wake", "runs": null}\n', b'{"op": "wake", "runs": 5}\n',
    b'{"op": "wake", "runs": [1e300]}\n', b'{"op": "wake", "runs": ["x"]}\n',
    b'{"op": "wake", "runs": [[1, [2]]]}\n', b'{"op": "wake", "runs": [true]}\n',
    b'{"op": "wake", "runs": [-1]}\n', b'{"op": "wake", "runs": [99999999999999999999999]}\n',
    b'{"op": "wake", "runs": {"1": 1}}\n', b'{"op": "wake", "runs": [1, 2, "3"]}\n',
]


@pytest.mark.e2e
def test_the_run_ids_of_old_wake_ups_are_not_read_and_the_daemon_keeps_serving(running_daemon):
    sock = running_daemon.home / "easyflow.sock"
    for data in OLD_WAKE_UPS:
        assert json.loads(send_raw(sock, data)) == {"ok": True}
        assert running_daemon.proc.poll() is None, (data[:40], running_daemon.log_tail())
    assert json.loads(ask(sock, {"op": "status"}))["pid"] == running_daemon.pid
    assert json.loads(send_raw(sock, b'{"op": "wake", "runs": []}\n')) == {"ok": True}


@pytest.mark.e2e
def test_hostile_requests_on_the_socket_do_not_hurt_the_daemon(running_daemon):
    sock = running_daemon.home / "easyflow.sock"
    for data in HOSTILE_REQUESTS:
        reply = send_raw(sock, data)
        if reply:
            assert json.loads(reply)["ok"] is False, (data[:40], reply)
        assert running_daemon.proc.poll() is None, (data[:40], running_daemon.log_tail())
    assert json.loads(ask(sock, {"op": "status"}))["pid"] == running_daemon.pid


# ---------------------------------------------------------------------- root trusts only its state


def easyflow_as(home: Path, *args: str, user: int | None = None,
                timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """The installed CLI in a process of its own (as `user` if given)."""
    return subprocess.run([*easyflow_command(), *args], capture_output=True, text=True,
                          env=subprocess_env(home, HOME="/"), timeout=timeout, user=user,
                          group=user, extra_groups=[] if user is not None else None)


def start_refused(home: Path) -> subprocess.CompletedProcess[str]:
    """`easyflow daemon`, expected to refuse to start (it would otherwise run until killed)."""
    return easyflow_as(home, "daemon", timeout=30)


def listing(directory: Path) -> list[str]:
    return sorted(str(p.relative_to(directory)) for p in directory.rglob("*"))


@as_root
@pytest.mark.parametrize("where", ["home", "logs"])
def test_root_refuses_a_state_directory_others_can_write(seeded, where):
    directory = seeded if where == "home" else seeded / "logs"
    directory.chmod(0o777)
    before = fingerprint(seeded), listing(seeded)
    result = invoke(seeded, "runs", "list")
    assert result.exit_code == 2
    expected = (f"state directory {directory} is writable by group or others (mode 0777)",
                f"chmod go-w {directory}")
    assert_one_clear_line(result.stderr, *expected)
    refused = start_refused(seeded)
    assert refused.returncode == 2
    assert_one_clear_line(refused.stderr, *expected)
    assert (fingerprint(seeded), listing(seeded)) == before


@as_root
def test_root_does_not_talk_to_a_socket_others_could_have_put_there(seeded):
    """A listener in a state directory anyone can write may be anyone's, not our daemon."""
    seeded.chmod(0o777)
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as impostor:
        impostor.bind(str(seeded / "easyflow.sock"))
        impostor.listen()
        impostor.setblocking(False)
        for args in (["status"], ["run", "seed", "--now", "--no-wait"]):
            result = invoke(seeded, *args)
            assert result.exit_code == 2, args
            assert_one_clear_line(result.stderr, "(mode 0777)")
        with pytest.raises(BlockingIOError):
            impostor.accept()


@as_root
def test_root_never_runs_a_workflow_from_another_users_state_directory(home, tmp_path):
    """Their database names a step; root must not run it, and says how to run it as them."""
    marker = tmp_path / "ran-as-root"
    path = write_workflow(tmp_path / "wf", "theirs", {"run": ["touch", str(marker)]})
    assert invoke(home, "workflow", "add", str(path)).exit_code == 0
    for name in [home, *home.rglob("*")]:
        os.chown(name, NOBODY, NOBODY)
    before = listing(home)
    result = invoke(home, "run", "theirs", "--now")
    assert result.exit_code == 2
    assert_one_clear_line(result.stderr, f"state directory {home} belongs to nobody",
                          f"sudo -u nobody EASYFLOW_HOME={home} easyflow")
    assert start_refused(home).returncode == 2
    assert not marker.exists()
    assert listing(home) == before


@as_root
def test_root_running_its_own_workflow_beside_the_service_says_whose_it_is(tmp_path,
                                                                           monkeypatch):
    """The system service's state directory exists: root's run --now is root's own, and says
    so, with the command that would run it as the service user instead."""
    service = tmp_path / "var-lib-easyflow"
    service.mkdir(mode=0o700)
    os.chown(service, NOBODY, NOBODY)
    monkeypatch.setattr(trust, "SERVICE_STATE_DIR", service)
    data = tmp_path / "root-data"
    env = {"EASYFLOW_HOME": None, "STATE_DIRECTORY": None, "XDG_DATA_HOME": str(data)}
    path = write_workflow(tmp_path / "wf", "mine", {"run": ["true"]})
    assert invoke(tmp_path, "workflow", "add", str(path), **env).exit_code == 0
    result = invoke(tmp_path, "run", "mine", "--now", **env)
    assert result.exit_code == 0, result.output
    note = [line for line in result.stderr.splitlines() if line.startswith("note: ")]
    assert note == [f"note: running mine as root, from root's own state directory "
                    f"{data / 'easyflow'}; the system service keeps its state in {service} as "
                    f"nobody: to run it there, sudo -u nobody EASYFLOW_HOME={service} easyflow "
                    "run mine --now"]
    chosen = invoke(tmp_path, "run", "mine", "--now",
                    **env | {"EASYFLOW_HOME": str(data / "easyflow")})
    assert chosen.exit_code == 0 and "note: " not in chosen.stderr  # a state directory named


@as_root
def test_a_daemon_lock_that_is_a_symlink_is_not_followed(seeded, tmp_path):
    target = tmp_path / "precious"
    target.write_text("root's file\n")
    (seeded / "daemon.lock").symlink_to(target)
    result = start_refused(seeded)
    assert result.returncode == 2
    assert_one_clear_line(result.stderr, f"{seeded / 'daemon.lock'} is a symbolic link")
    assert target.read_text() == "root's file\n"


def test_a_run_log_that_is_a_symlink_is_not_followed(seeded, tmp_path):
    target = tmp_path / "precious"
    target.write_text("root's file\n")
    (seeded / "logs" / "1.log").symlink_to(target)
    result = invoke(seeded, "run", "seed", "--now", "--json")
    record = json.loads(result.stdout)
    assert record["id"] == 1
    assert "run log incomplete" in record["error"] and "symbolic link" in record["error"]
    assert target.read_text() == "root's file\n"


@pytest.mark.e2e
def test_the_daemon_does_not_follow_a_run_log_symlink(running_daemon, tmp_path):
    target = tmp_path / "precious"
    target.write_text("root's file\n")
    next_id = max([run["id"] for run in running_daemon.runs()], default=0) + 1
    (running_daemon.home / "logs" / f"{next_id}.log").symlink_to(target)
    record = running_daemon.submit("envdump")
    assert record["id"] == next_id
    done = running_daemon.wait_for_state(next_id, "succeeded", "failed", timeout=30)
    assert "run log incomplete" in done["error"], done
    assert target.read_text() == "root's file\n"


# ---------------------------------------------------------------------- the database is ours


def test_a_foreign_database_is_refused_by_the_cli_and_the_daemon(seeded):
    """Someone's own SQLite file, with a table of the same name, swapped in for ours."""
    database = seeded / "easyflow.db"
    for path in seeded.glob("easyflow.db*"):
        path.unlink()
    conn = sqlite3.connect(database)
    conn.execute("CREATE TABLE workflows (name, spec_json)")
    conn.execute("INSERT INTO workflows VALUES ('seed', '{\"steps\": [{\"run\": \"id\"}]}')")
    conn.commit()
    conn.close()
    before = database.read_bytes()
    result = invoke(seeded, "run", "seed", "--now")
    assert result.exit_code == 1
    assert_one_clear_line(result.stderr, f"{database} is not an easyflow database")
    refused = start_refused(seeded)
    assert refused.returncode == 1
    assert_one_clear_line(refused.stderr, f"{database} is not an easyflow database")
    assert database.read_bytes() == before


def test_an_emptied_database_is_refused_not_started_over(seeded):
    database = seeded / "easyflow.db"
    database.write_bytes(b"")
    result = invoke(seeded, "workflow", "list")
    assert result.exit_code == 1
    assert_one_clear_line(result.stderr, f"database {database} is empty (0 bytes)")
    assert database.read_bytes() == b""


def test_a_damaged_database_stops_the_daemon_and_the_cli_says_so(home):
    with Store.open(home) as store:
        store.conn.executemany(
            "INSERT INTO runs (workflow, trigger, mode, mode_reason, cost_priority,"
            " priority_rank, state, enqueued_at, error) VALUES ('w', 'manual', 'eco', 'manual',"
            " 'normal', 1, 'failed', '2026-01-01T00:00:00Z', ?)",
            [(f"the step said {i} " * 10,) for i in range(5000)])
        store.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        # The runs table's page nearest the middle of the file, so that listing runs reads it.
        page, size = store.conn.execute(
            "SELECT pageno, pgsize FROM dbstat WHERE name = 'runs' AND pagetype = 'leaf'"
            " ORDER BY abs(pageno - (SELECT max(pageno) FROM dbstat) / 2) LIMIT 1").fetchone()
    database = home / "easyflow.db"
    with open(database, "r+b") as file:
        file.seek((page - 1) * size)
        file.write(os.urandom(4096))
    refused = start_refused(home)
    assert refused.returncode == 1
    assert_one_clear_line(refused.stderr, f"database {database} is damaged",
                          "restore it from a backup")
    result = invoke(home, "runs", "list", "--limit", "100000", "--json")
    assert result.exit_code == 1
    assert_one_clear_line(result.stderr, "database", "damaged")


# ---------------------------------------------------------------------- logs


def test_logs_shows_control_characters_escaped_unless_raw(home, tmp_path):
    output = "\x1b[31mred\x1b[0m\there\r\x07\x9b\n"
    path = write_workflow(tmp_path / "wf", "loud", {
        "run": [sys.executable, "-c", f"import sys; sys.stdout.write({output!r})"]})
    assert invoke(home, "workflow", "add", str(path)).exit_code == 0
    assert invoke(home, "run", "loud", "--now").exit_code == 0
    shown = invoke(home, "logs", "1")
    assert shown.exit_code == 0
    assert "\\x1b[31mred\\x1b[0m\there\\x0d\\x07\\x9b\n" in shown.stdout
    assert "\x1b" not in shown.stdout and "\r" not in shown.stdout
    raw = invoke(home, "logs", "1", "--raw")
    assert output in raw.stdout


def invoke_as(uid: int, home: Path, *args: str) -> tuple[int, str, str]:
    """`invoke` in a forked child that dropped to `uid`: (exit code, stdout, stderr).

    In-process because this Python lives where other users cannot read it; whatever the
    command imports must already be loaded (call `invoke` once as root first)."""
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: never return into pytest
        try:
            os.close(read_end)
            os.setgroups([])
            os.setgid(uid)
            os.setuid(uid)
            result = invoke(home, *args)
            os.write(write_end, json.dumps([result.exit_code, result.stdout,
                                            result.stderr]).encode())
        finally:
            os._exit(0)
    os.close(write_end)
    with os.fdopen(read_end, "rb") as pipe:
        outcome = pipe.read().decode()
    os.waitpid(pid, 0)
    code, out, err = json.loads(outcome)
    return code, out, err


@as_root
def test_logs_of_a_log_root_left_is_one_line_for_the_service_user(tmp_path):
    """The service user's state holds a log root wrote (before root was refused there)."""
    root = Path(tempfile.mkdtemp(prefix="easyflow-service-", dir="/tmp"))
    try:
        root.chmod(0o711)
        home = root / "home"
        path = write_workflow(tmp_path / "wf", "job", {"run": ["echo", "secret output"]})
        assert invoke(home, "workflow", "add", str(path)).exit_code == 0
        assert invoke(home, "run", "job", "--now").exit_code == 0
        assert invoke(home, "logs", "1").exit_code == 0
        log = home / "logs" / "1.log"
        for name in [home, *home.rglob("*")]:
            if name != log:
                os.chown(name, NOBODY, NOBODY)
        code, out, err = invoke_as(NOBODY, home, "logs", "1")
        assert code == 1
        assert_one_clear_line(err, f"cannot read {log}: it belongs to root", "read it as root")
        assert out == ""
    finally:
        shutil.rmtree(root, ignore_errors=True)
