"""The shipped systemd units keep their promises (and pass systemd's own checks)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from functools import cache
from pathlib import Path

import pytest

UNIT_DIR = Path(__file__).resolve().parents[2] / "systemd"
SYSTEM_UNIT = UNIT_DIR / "easyflow.service"
USER_UNIT = UNIT_DIR / "easyflow-user.service"
BOTH = pytest.mark.parametrize("unit", [SYSTEM_UNIT, USER_UNIT], ids=["system", "user"])

DAEMON_DRAIN_GRACE_S = 60
MAX_EXPOSURE = 2.0

# Calls the daemon needs to demote the eco pool, and the groups that contain them.
PRIORITY_SYSCALLS = {
    "setpriority": {"@resources", "@system-service"},
    "ioprio_set": {"@resources", "@system-service"},
    "sched_setattr": {"@resources", "@system-service"},
}

Unit = dict[str, dict[str, list[str]]]


def parse_unit(path: Path) -> Unit:
    """Tiny unit-file parser: keeps every assignment, since keys may repeat."""
    sections: Unit = {}
    current: dict[str, list[str]] | None = None
    pending = ""
    for raw in path.read_text().splitlines():
        line = pending + raw.strip()
        pending = ""
        if not line or line[0] in "#;":
            continue
        if line.endswith("\\"):
            pending = line[:-1] + " "
            continue
        if line.startswith("[") and line.endswith("]"):
            current = sections.setdefault(line[1:-1], {})
            continue
        assert current is not None, f"assignment outside a section: {line!r}"
        key, sep, value = line.partition("=")
        assert sep, f"not an assignment: {line!r}"
        current.setdefault(key.strip(), []).append(value.strip())
    return sections


def svc(unit: Path) -> dict[str, list[str]]:
    return parse_unit(unit)["Service"]


def last(unit: Path, key: str, section: str = "Service") -> str:
    values = parse_unit(unit)[section].get(key)
    assert values, f"{unit.name}: {section}.{key} is not set"
    return values[-1]


def timespan_seconds(value: str) -> float:
    units = {"": 1, "s": 1, "sec": 1, "m": 60, "min": 60, "h": 3600, "ms": 0.001}
    total = 0.0
    for number, suffix in re.findall(r"(\d+(?:\.\d+)?)\s*([a-z]*)", value):
        total += float(number) * units[suffix]
    return total


def syscall_allowed(filters: list[str], name: str, groups: set[str]) -> bool:
    """Replay systemd's merge rules: the first line sets the mode, later lines edit the set."""
    allowed: bool | None = None
    for line in filters:
        if not line:
            allowed = None
            continue
        deny = line.startswith("~")
        tokens = {tok.split(":")[0] for tok in line.lstrip("~").split()}
        if allowed is None:
            allowed = deny  # an allow-list starts from "nothing", a deny-list from "all"
        if tokens & ({name} | groups):
            allowed = not deny
    return allowed is not False


# --- Promises shared by both units -----------------------------------------------------


@BOTH
def test_type_notify_and_main_only(unit: Path) -> None:
    assert last(unit, "Type") == "notify"
    assert last(unit, "NotifyAccess") == "main"


@BOTH
def test_exec_start_runs_daemon(unit: Path) -> None:
    assert svc(unit)["ExecStart"] == ["/usr/local/bin/easyflow daemon"]
    text = unit.read_text()
    assert "Adjust to where `easyflow` is installed" in text


@BOTH
def test_reload_sends_hup(unit: Path) -> None:
    assert last(unit, "ExecReload") == "/bin/kill -HUP $MAINPID"


@BOTH
def test_restart_and_watchdog(unit: Path) -> None:
    assert last(unit, "Restart") == "on-failure"
    assert timespan_seconds(last(unit, "RestartSec")) == 2
    assert timespan_seconds(last(unit, "WatchdogSec")) == 30


@BOTH
def test_stop_outlasts_drain_grace(unit: Path) -> None:
    assert timespan_seconds(last(unit, "TimeoutStopSec")) > DAEMON_DRAIN_GRACE_S
    assert last(unit, "KillMode") == "mixed"


@BOTH
def test_runs_get_cgroups_of_their_own(unit: Path) -> None:
    assert last(unit, "Delegate") == "yes"
    # `yes` would make the delegated cgroup read-only too (the user unit cannot set it).
    assert parse_unit(unit)["Service"].get("ProtectControlGroups", ["no"])[-1] == "no"


@BOTH
def test_room_for_many_connections(unit: Path) -> None:
    assert int(last(unit, "LimitNOFILE")) >= 4096  # systemd's default soft limit is 1024


@BOTH
def test_directories_and_environment(unit: Path) -> None:
    environment = " ".join(svc(unit)["Environment"]).split()
    assert "PYTHONUNBUFFERED=1" in environment
    if unit.name == "easyflow.service":
        assert last(unit, "StateDirectory") == "easyflow"
        assert last(unit, "StateDirectoryMode") == "0700"
        assert last(unit, "ConfigurationDirectory") == "easyflow"
    else:
        # The user's own `easyflow` CLI looks in the XDG data dir; the daemon must use it too.
        assert "EASYFLOW_HOME=%h/.local/share/easyflow" in environment


@BOTH
def test_basic_hardening(unit: Path) -> None:
    assert last(unit, "NoNewPrivileges") == "yes"
    assert last(unit, "UMask") == "0077"
    assert last(unit, "SystemCallArchitectures") == "native"
    assert last(unit, "RestrictRealtime") == "yes"
    assert last(unit, "SystemCallErrorNumber") == "EPERM"


@BOTH
def test_workflows_keep_network(unit: Path) -> None:
    service = svc(unit)
    families = last(unit, "RestrictAddressFamilies").split()
    assert {"AF_INET", "AF_INET6"} <= set(families)
    assert not families[0].startswith("~")
    assert "IPAddressDeny" not in service
    assert service.get("PrivateNetwork", ["no"])[-1] == "no"


@BOTH
def test_workflows_may_jit(unit: Path) -> None:
    assert last(unit, "MemoryDenyWriteExecute") == "no"


@BOTH
def test_priority_is_only_ever_lowered_by_the_daemon(unit: Path) -> None:
    service = svc(unit)
    assert int(last(unit, "Nice")) == 0
    assert "CPUSchedulingPolicy" not in service
    assert "IOSchedulingClass" not in service


@BOTH
def test_syscall_filter_keeps_priority_calls(unit: Path) -> None:
    filters = svc(unit)["SystemCallFilter"]
    assert filters[0] == "@system-service"
    assert any(line.startswith("~") and "@privileged" in line[1:].split() for line in filters)
    for name, groups in PRIORITY_SYSCALLS.items():
        assert syscall_allowed(filters, name, groups), f"{name} is filtered in {unit.name}"
    # Sanity check of the replay itself: something in ~@privileged really is denied.
    assert not syscall_allowed(filters, "setuid", {"@privileged", "@setuid", "@system-service"})


# --- System unit -----------------------------------------------------------------------


def test_system_unit_runs_as_dedicated_user() -> None:
    assert last(SYSTEM_UNIT, "DynamicUser") == "no"
    assert last(SYSTEM_UNIT, "User") == "easyflow"
    assert last(SYSTEM_UNIT, "Group") == "easyflow"
    assert "useradd --system" in SYSTEM_UNIT.read_text()


def test_system_unit_has_no_capabilities() -> None:
    service = svc(SYSTEM_UNIT)
    assert service["CapabilityBoundingSet"] == [""]
    assert service["AmbientCapabilities"] == [""]


def test_system_unit_sandbox() -> None:
    assert last(SYSTEM_UNIT, "ProtectSystem") == "strict"
    assert last(SYSTEM_UNIT, "ProtectHome") == "read-only"
    for key in (
        "PrivateTmp",
        "PrivateDevices",
        "PrivateUsers",
        "ProtectKernelTunables",
        "ProtectKernelModules",
        "ProtectKernelLogs",
        "ProtectClock",
        "ProtectHostname",
        "RestrictNamespaces",
        "RestrictSUIDSGID",
        "LockPersonality",
        "RemoveIPC",
    ):
        assert last(SYSTEM_UNIT, key) == "yes", key
    assert last(SYSTEM_UNIT, "ProtectProc") == "invisible"
    assert last(SYSTEM_UNIT, "DevicePolicy") == "closed"
    assert last(SYSTEM_UNIT, "KeyringMode") == "private"


def test_system_unit_ordering_and_install() -> None:
    unit = parse_unit(SYSTEM_UNIT)
    assert "network-online.target" in " ".join(unit["Unit"]["After"]).split()
    assert "network-online.target" in " ".join(unit["Unit"]["Wants"]).split()
    assert unit["Install"]["WantedBy"] == ["multi-user.target"]


# --- User unit -------------------------------------------------------------------------

# These need a user namespace when applied by a user manager; the unit would fail to start
# (226/NAMESPACE) wherever unprivileged user namespaces are unavailable.
USERNS_ONLY = (
    "User",
    "Group",
    "CapabilityBoundingSet",
    "AmbientCapabilities",
    "PrivateUsers",
    "PrivateTmp",
    "PrivateDevices",
    "ProtectSystem",
    "ProtectHome",
    "ProtectKernelTunables",
    "ProtectKernelModules",
    "ProtectKernelLogs",
    "ProtectControlGroups",
    "ProtectHostname",
    "ProtectProc",
    "ProcSubset",
)


def test_user_unit_avoids_root_only_settings() -> None:
    service = svc(USER_UNIT)
    present = [key for key in USERNS_ONLY if key in service]
    assert not present, f"not usable in a user manager without userns: {present}"


def test_user_unit_install() -> None:
    unit = parse_unit(USER_UNIT)
    assert unit["Install"]["WantedBy"] == ["default.target"]
    assert "network-online.target" not in USER_UNIT.read_text().split("[Service]")[0]


# --- systemd's own checks --------------------------------------------------------------


@cache
def _analyze() -> str | None:
    return shutil.which("systemd-analyze")


@cache
def _supports_offline(analyze: str) -> bool:
    result = subprocess.run(
        [analyze, "security", "--help"], capture_output=True, text=True, check=False
    )
    return "--offline" in result.stdout + result.stderr


def _require_analyze(offline: bool = False) -> str:
    analyze = _analyze()
    if analyze is None:
        pytest.skip("systemd-analyze is not on PATH")
    if offline and not _supports_offline(analyze):
        pytest.skip("systemd-analyze does not support --offline (needs systemd >= 250)")
    return analyze


def _runnable_copy(unit: Path, tmp_path: Path) -> Path:
    """Copy ``unit`` with ExecStart pointing at an executable that exists here."""
    stub = tmp_path / "bin" / "easyflow"
    stub.parent.mkdir(exist_ok=True)
    stub.write_text("#!/bin/sh\nexit 0\n")
    stub.chmod(0o755)
    text = re.sub(r"(?m)^ExecStart=\S+", f"ExecStart={stub}", unit.read_text())
    copy = tmp_path / unit.name
    copy.write_text(text)
    return copy


def _run(args: list[str], tmp_path: Path) -> subprocess.CompletedProcess[str]:
    runtime = tmp_path / "xdg-runtime"
    runtime.mkdir(mode=0o700, exist_ok=True)
    # --user needs a runtime dir even offline; a private one keeps the host's untouched.
    env = {**os.environ, "XDG_RUNTIME_DIR": str(runtime), "SYSTEMD_LOG_COLOR": "0"}
    return subprocess.run(args, capture_output=True, text=True, env=env, check=False, timeout=120)


@pytest.mark.parametrize(
    ("unit", "scope"), [(SYSTEM_UNIT, []), (USER_UNIT, ["--user"])], ids=["system", "user"]
)
def test_systemd_analyze_verify(unit: Path, scope: list[str], tmp_path: Path) -> None:
    analyze = _require_analyze()
    copy = _runnable_copy(unit, tmp_path)
    result = _run([analyze, *scope, "verify", str(copy)], tmp_path)
    assert result.returncode == 0, result.stderr
    # Unknown keys and bad values are only warnings (exit 0), so read the output too.
    complaints = [line for line in result.stderr.splitlines() if copy.name in line]
    assert not complaints, "\n".join(complaints)


def test_systemd_analyze_security_exposure(tmp_path: Path) -> None:
    analyze = _require_analyze(offline=True)
    copy = _runnable_copy(SYSTEM_UNIT, tmp_path)
    threshold = str(round(MAX_EXPOSURE * 10))  # --threshold counts in tenths
    result = _run(
        [analyze, "security", "--offline=yes", f"--threshold={threshold}", str(copy)], tmp_path
    )
    match = re.search(r"Overall exposure level for \S+: (\d+(?:\.\d+)?)", result.stdout)
    assert match, result.stdout + result.stderr
    exposure = float(match.group(1))
    assert exposure <= MAX_EXPOSURE, result.stdout
    assert result.returncode == 0, result.stdout + result.stderr


# --- The cluster worker's template unit ---------------------------------------------------

WORKER_UNIT = UNIT_DIR / "easyflow-worker@.service"
ECO_TIMEOUT_S = 300


def test_worker_unit_serves_the_pool_its_instance_names() -> None:
    assert svc(WORKER_UNIT)["ExecStart"] == ["/usr/local/bin/easyflow worker --pool %i"]
    assert last(WORKER_UNIT, "User") == "easyflow"
    assert last(WORKER_UNIT, "CapabilityBoundingSet") == ""


def test_worker_unit_lets_running_runs_end_before_it_kills() -> None:
    assert last(WORKER_UNIT, "KillMode") == "mixed"
    assert timespan_seconds(last(WORKER_UNIT, "TimeoutStopSec")) > ECO_TIMEOUT_S
    assert syscall_allowed(svc(WORKER_UNIT)["SystemCallFilter"], "ioprio_set",
                           PRIORITY_SYSCALLS["ioprio_set"])


def test_worker_unit_passes_systemd_analyze_verify(tmp_path: Path) -> None:
    analyze = _require_analyze()
    copy = _runnable_copy(WORKER_UNIT, tmp_path)
    instance = copy.with_name("easyflow-worker@eco.service")
    copy.rename(instance)
    result = _run([analyze, "verify", str(instance)], tmp_path)
    assert result.returncode == 0, result.stderr
    complaints = [line for line in result.stderr.splitlines() if instance.name in line]
    assert not complaints, "\n".join(complaints)
