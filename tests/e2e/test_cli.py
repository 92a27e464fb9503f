"""The installed `easyflow` command, in a subprocess with its own EASYFLOW_HOME."""

import json
import subprocess

import pytest

from tests.conftest import easyflow_command, subprocess_env

pytestmark = pytest.mark.e2e


def easyflow(home, *args, check=True):
    result = subprocess.run([*easyflow_command(), *args], env=subprocess_env(home),
                            capture_output=True, text=True, timeout=120)
    if check:
        assert result.returncode == 0, result.stderr
    return result


def test_examples_register_and_run(tmp_path, examples):
    home = tmp_path / "home"
    easyflow(home, "workflow", "add", str(examples))
    result = easyflow(home, "run", "dashboard-refresh", "--now")
    assert "refreshed in" in result.stdout
    runs = json.loads(easyflow(home, "runs", "list", "--json").stdout)
    assert [(r["state"], r["mode"], r["mode_reason"]) for r in runs] == [
        ("succeeded", "real-time", "manual")]
    assert runs[0]["cpu_user_s"] > 0 and runs[0]["peak_rss_kb"] > 0


def test_timeout_leaves_no_process_behind(tmp_path, write):
    home = tmp_path / "home"
    marker = tmp_path / "pids"
    path = write("stuck.toml", f'''
        name = "stuck"
        timeout = "1s"
        [[steps]]
        shell = true
        run = """trap '' TERM; sleep 300 & echo $! > {marker}; \
(trap '' TERM; sleep 301) & echo $! >> {marker}; sleep 302"""
        ''')
    easyflow(home, "workflow", "add", str(path))
    (home / "easyflow.toml").write_text('[daemon]\nkill_grace = "1s"\n')  # SIGKILL sooner
    result = easyflow(home, "run", "stuck", "--now", "--json", check=False)
    assert result.returncode == 1
    assert json.loads(result.stdout)["state"] == "timed_out"
    leftovers = subprocess.run(["pgrep", "-f", "sleep 30[012]"], capture_output=True, text=True)
    pids = set(marker.read_text().split())
    assert not pids & set(leftovers.stdout.split())


def test_broken_directory_registers_nothing(tmp_path, examples):
    home = tmp_path / "home"
    (examples / "broken.toml").write_text('name = "x"\nexecution_mode = "turbo"\n'
                                          '[[steps]]\nrun = ["true"]\n')
    result = easyflow(home, "workflow", "add", str(examples), check=False)
    assert result.returncode == 2
    assert result.stderr.strip() == (f"error: {examples / 'broken.toml'}:2: execution_mode: must "
                                      "be one of \"real-time\", \"balanced\", \"eco\", got 'turbo'")
    assert "Traceback" not in result.stderr
    assert json.loads(easyflow(home, "workflow", "list", "--json").stdout) == []


def test_every_kind_of_step_of_a_foreground_run_sees_its_run_id(tmp_path, write):
    home = tmp_path / "home"
    write("ef_run_id.py", "import os\n"
                          "def show():\n    print('call sees', os.environ['EASYFLOW_RUN_ID'])\n")
    path = write("ids.toml", '''
        name = "ids"
        [[steps]]
        shell = true
        run = "echo program sees $EASYFLOW_RUN_ID"
        [[steps]]
        call = "ef_run_id:show"
        ''')
    easyflow(home, "workflow", "add", str(path))
    result = easyflow(home, "run", "ids", "--now", "--json")
    run_id = json.loads(result.stdout)["id"]
    log = easyflow(home, "logs", str(run_id)).stdout
    assert f"program sees {run_id}\n" in log and f"call sees {run_id}\n" in log
