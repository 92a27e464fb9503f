"""End-to-end: a workflow's max_concurrent under many concurrent `run --now`, and its secrets
kept out of everything easyflow shows, stores and logs (a real daemon, the real CLI)."""

from __future__ import annotations

import hashlib
import json
import textwrap
from pathlib import Path

import pytest

pytest_plugins = ["tests.daemon_harness"]
pytest.register_assert_rewrite("tests.daemon_harness")
from tests.daemon_harness import DaemonHarness, max_overlap, parse_time  # noqa: E402

pytestmark = pytest.mark.e2e

SUBMISSIONS = 50


def test_max_concurrent_one_holds_under_fifty_concurrent_run_now(daemon: DaemonHarness,
                                                                  tmp_path: Path):
    daemon.write_config("[pools.real-time]\nworkers = 5\n")
    gate, times = tmp_path / "gate", tmp_path / "times.txt"
    daemon.add_workflow("one", ["sh", "-c", f"while [ ! -e {gate} ]; do sleep 0.05; done"],
                        daemon.record_step(times, 0.02), max_concurrent=1)
    daemon.start()

    submitted = daemon.submit_many("one", SUBMISSIONS)
    daemon.wait_for_runs(lambda rs: [r["state"] for r in rs].count("queued") == SUBMISSIONS - 1,
                         workflow="one", timeout=120,
                         message="one run running, the others queued")
    status = daemon.status()
    assert status["pools"]["real-time"]["size"] == 5  # room enough: the limit held them
    assert status["held_by_limit"] == [{"workflow": "one", "max_concurrent": 1, "running": 1,
                                        "queued": SUBMISSIONS - 1}]
    said = daemon.cli("status").stdout
    assert f"waiting for max_concurrent: one {SUBMISSIONS - 1} queued, 1 running" in said
    gate.touch()
    runs = daemon.wait_for_runs(
        lambda rs: len(rs) == SUBMISSIONS and all(r["state"] == "succeeded" for r in rs),
        workflow="one", timeout=120, message="every run of one to succeed")

    assert {r["mode"] for r in runs} == {"real-time"} and len(submitted) == SUBMISSIONS
    steps = [tuple(map(float, line.split())) for line in times.read_text().splitlines()]
    recorded = [(parse_time(r["started_at"]).timestamp(), parse_time(r["finished_at"]).timestamp())
                for r in runs]
    assert len(steps) == SUBMISSIONS
    assert max_overlap(steps) == 1 and max_overlap(recorded) == 1, sorted(recorded)
    daemon.stop()


SECRET_FILE_VALUE = "file-secret-5d1c9e"
CREDENTIAL_VALUE = "credential-secret-8b27f4"


def test_secrets_are_absent_from_show_export_database_and_log(daemon: DaemonHarness,
                                                              tmp_path: Path):
    secrets = tmp_path / "secrets.env"
    secrets.write_text(f"export TOKEN='{SECRET_FILE_VALUE}'\n")
    secrets.chmod(0o600)
    credentials = tmp_path / "credentials"
    credentials.mkdir(mode=0o700)
    (credentials / "api-token").write_text(CREDENTIAL_VALUE + "\n")
    (credentials / "api-token").chmod(0o600)
    out = tmp_path / "digests.txt"
    workflow = daemon.workflow_dir / "secretive.toml"
    workflow.write_text(textwrap.dedent(f"""\
        name = "secretive"
        env_file = "{secrets}"

        [[steps]]
        run = "echo token=$TOKEN api=$API_TOKEN; printf %s $TOKEN $API_TOKEN | sha256sum > {out}"
        shell = true
        env = {{ API_TOKEN = {{ credential = "api-token" }} }}
        """))
    daemon.cli("workflow", "add", str(workflow))
    daemon.start(CREDENTIALS_DIRECTORY=str(credentials))

    run = daemon.submit("secretive")
    done = daemon.wait_for_state(run["id"], "succeeded", "failed")
    assert done["state"] == "succeeded", done
    both = (SECRET_FILE_VALUE + CREDENTIAL_VALUE).encode()
    assert out.read_text().split()[0] == hashlib.sha256(both).hexdigest()  # the step had them
    log = Path(done["log_path"]).read_text()
    assert "token=*** api=***" in log

    shown = [daemon.cli("workflow", "show", "secretive").stdout,
             daemon.cli("workflow", "show", "secretive", "--json").stdout,
             daemon.cli("workflow", "export", "secretive").stdout,
             daemon.cli("runs", "show", str(run["id"]), "--json").stdout,
             daemon.cli("runs", "show", str(run["id"])).stdout, log]
    spec = json.loads(shown[1])["spec"]
    assert spec["env_file"] == str(secrets)
    assert spec["steps"][0]["env"] == {"API_TOKEN": {"credential": "api-token"}}
    # The database file with its write-ahead log, while the daemon runs and once it stopped.
    stored = b"".join(path.read_bytes() for path in daemon.home.glob("easyflow.db*"))
    daemon.stop()
    stored += b"".join(path.read_bytes() for path in daemon.home.glob("easyflow.db*"))
    assert b"secretive" in stored
    for value in (SECRET_FILE_VALUE, CREDENTIAL_VALUE):
        assert all(value not in text for text in shown), value
        assert value.encode() not in stored
