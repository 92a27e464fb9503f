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
import shutil
import socket
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
import tomli_w
from typer.testing import CliRunner

from easyflow_cli.cli.main import app
from easyflow_cli.core import spec as spec_module
from easyflow_cli.core.spec import parse_workflow_file
from tests.daemon_harness import DaemonHarness, wait_for
from tests.e2e.test_hostile import assert_one_clear_line, fingerprint

NOBODY = 65534
SECRET = "EASYFLOW_TEST_SECRET"
runner = CliRunner()
as_root = pytest.mark.skipif(os.geteuid() != 0, reason="needs root")


def invoke(home: Path, *args: str, **env: str):
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
    monkeypatch.setattr(spec_module.os, "geteuid", lambda: 1000)
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
    # The only variable easyflow adds itself: which run this is (none of the daemon's own).
    assert {n for n in names if n.startswith("EASYFLOW_")} <= {"EASYFLOW_RUN_ID"}, names
    assert names <= {"PATH", "HOME", "LANG", "LC_ALL", "TZ", "USER", "LOGNAME", "TMPDIR",
                     "DECLARED", "EASYFLOW_RUN_ID"}, names


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
    wait_for(lambda: running_daemon.log_text().count("refused a connection from another user")
             >= 2, timeout=10, message="the refusals in the daemon's log")
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


BAD_WAKE_UPS = [
    b'{"op": "wake", "runs": null}\n', b'{"op": "wake", "runs": 5}\n',
    b'{"op": "wake", "runs": [1e300]}\n', b'{"op": "wake", "runs": ["x"]}\n',
    b'{"op": "wake", "runs": [[1, [2]]]}\n', b'{"op": "wake", "runs": [true]}\n',
    b'{"op": "wake", "runs": [-1]}\n', b'{"op": "wake", "runs": [99999999999999999999999]}\n',
    b'{"op": "wake", "runs": {"1": 1}}\n', b'{"op": "wake", "runs": [1, 2, "3"]}\n',
]


@pytest.mark.e2e
def test_malformed_wake_ups_are_refused_and_the_daemon_keeps_serving(running_daemon):
    sock = running_daemon.home / "easyflow.sock"
    for data in BAD_WAKE_UPS:
        reply = json.loads(send_raw(sock, data))
        assert reply["ok"] is False and reply["error"].startswith("wake: runs must be"), reply
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
