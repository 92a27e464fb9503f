"""The executor runs real processes: exit codes, output, timeouts, leftovers, usage."""

import io
import json
import os
import re
import sys
import time

import pytest

from easyflow_cli.core.model import RunState
from easyflow_cli.core.spec import parse_workflow_text
from easyflow_cli.runtime.executor import (
    CHECK_S,
    RunLimits,
    execute_workflow,
    step_environment,
)
from easyflow_cli.runtime.processes import become_subreaper

PY = sys.executable


def wf(steps_toml, extra=""):
    return parse_workflow_text(f'name = "t"\n{extra}\n{steps_toml}')


def run(spec, timeout=30.0, kill_grace=1.0, log_max_bytes=1 << 20):
    log = io.BytesIO()
    outcome = execute_workflow(spec, RunLimits(timeout=timeout, kill_grace=kill_grace,
                                               log_max_bytes=log_max_bytes), log)
    return outcome, log.getvalue().decode(errors="replace")


def step(run, **fields):
    """One [[steps]] table; `fields` values are TOML literals (true, "1s", { A = "b" })."""
    lines = ["[[steps]]", f"run = {json.dumps(run)}"]
    lines += [f"{k} = {v}" for k, v in fields.items()]
    return "\n".join(lines) + "\n"


def test_each_step_is_echoed_as_a_shell_would_read_it():
    _, log = run(wf(step(["printf", "%s|", "two words", "it's"])
                    + step("echo $((1 + 1)) > /dev/null", shell="true")))
    assert log.splitlines() == [
        "[easyflow] step 'step-1': printf '%s|' 'two words' 'it'\"'\"'s'",
        "two words|it's|",
        "[easyflow] step 'step-2': echo $((1 + 1)) > /dev/null",
    ]


def test_success_and_output():
    outcome, log = run(wf(step(["echo", "hello"]) + step(["sh", "-c", "echo err >&2"])))
    assert outcome.state is RunState.SUCCEEDED and outcome.exit_code == 0
    assert "hello\n" in log and "err\n" in log


def test_failing_step_stops_the_run():
    outcome, log = run(wf(step(["sh", "-c", "exit 3"]) + step(["echo", "never"])))
    assert outcome.state is RunState.FAILED and outcome.exit_code == 3
    assert outcome.error == "step 'step-1' exited with code 3"
    assert "never" not in log


def test_continue_on_error():
    outcome, log = run(wf(step(["false"], continue_on_error="true") + step(["echo", "after"])))
    assert outcome.state is RunState.SUCCEEDED and "after" in log


def test_missing_program_is_127():
    outcome, _ = run(wf(step(["/nonexistent/prog"])))
    assert outcome.state is RunState.FAILED and outcome.exit_code == 127
    assert "cannot execute" in outcome.error


def test_timeout_kills_whole_group_including_term_ignoring_grandchildren(tmp_path):
    marker = tmp_path / "pids"
    script = (f"trap '' TERM; (trap '' TERM; exec sleep 300) & echo $! > {marker}; "
              "sleep 300 & echo $! >> " + str(marker) + "; trap '' TERM; sleep 300")
    start = time.monotonic()
    outcome, log = run(wf(step(script, shell="true")), timeout=1.0, kill_grace=0.5)
    elapsed = time.monotonic() - start
    assert outcome.state is RunState.TIMED_OUT
    assert "timed out" in outcome.error
    assert elapsed < 10
    for pid in map(int, marker.read_text().split()):
        assert not _alive(pid), f"process {pid} survived the timeout"


def test_background_leftovers_are_killed_when_step_exits(tmp_path):
    marker = tmp_path / "pid"
    outcome, _ = run(wf(step(f"sleep 300 & echo $! > {marker}", shell="true")), kill_grace=0.5)
    assert outcome.state is RunState.SUCCEEDED
    assert not _alive(int(marker.read_text()))


@pytest.mark.parametrize("ends", ["exits", "times out"])
def test_processes_that_left_the_step_s_group_end_with_it(tmp_path, ends):
    """`setsid` and a double fork put processes in groups of their own: they come back to the
    subreaper when their parents die, and are stopped with the step."""
    become_subreaper()
    pids = tmp_path / "pids"
    script = (f"setsid sleep 300 & echo $! >> {pids}; (setsid sleep 301 & echo $! >> {pids}); "
              + ("sleep 30" if ends == "times out" else "true"))
    outcome, _ = run(wf(step(["sh", "-c", script], timeout='"1s"')), kill_grace=0.2)
    assert outcome.state is (RunState.TIMED_OUT if ends == "times out" else RunState.SUCCEEDED)
    started = list(map(int, pids.read_text().split()))
    assert len(started) == 2
    for pid in started:
        with pytest.raises(ProcessLookupError):  # killed, and reaped
            os.kill(pid, 0)


def test_step_timeout_and_workflow_timeout():
    outcome, _ = run(wf(step(["sleep", "5"], timeout='"1s"')), kill_grace=0.2)
    assert outcome.state is RunState.TIMED_OUT
    outcome, _ = run(wf(step(["sleep", "5"]), extra='timeout = "1s"'), kill_grace=0.2)
    assert outcome.state is RunState.TIMED_OUT


def test_cpu_of_grandchildren_is_counted():
    burn = f"{PY} -c 'import time; t=time.process_time()\nwhile time.process_time()-t<0.3: pass'"
    outcome, _ = run(wf(step(f"({burn}) & ({burn}) & wait", shell="true")))
    assert outcome.state is RunState.SUCCEEDED
    assert outcome.cpu_user_s + outcome.cpu_system_s >= 0.5
    assert outcome.peak_rss_kb > 1000


def test_orphaned_grandchild_cpu_is_counted_via_subreaper(tmp_path):
    from easyflow_cli.runtime.processes import become_subreaper

    become_subreaper()
    done = tmp_path / "burnt"
    burn = f"{PY} -c 'import time; t=time.process_time()\nwhile time.process_time()-t<0.4: pass'"
    # The orphan is reparented to us and reaped when the group ends; the shell waits until it
    # has burnt its CPU (however slow the box), then exits.
    wait = f"while [ ! -e {done} ]; do sleep 0.05; done"
    outcome, _ = run(wf(step(f"({burn}; touch {done}) & {wait}", shell="true")))
    assert outcome.cpu_user_s + outcome.cpu_system_s >= 0.3


def test_environment_is_minimal_plus_declared(monkeypatch):
    monkeypatch.setenv("SECRET_OF_THE_DAEMON", "x")
    spec = wf(step(["env"], env='{ GREETING = "hi" }'))
    env = step_environment(spec.steps[0])
    assert "SECRET_OF_THE_DAEMON" not in env and env["GREETING"] == "hi" and "PATH" in env
    _, log = run(spec)
    assert "GREETING=hi" in log and "SECRET_OF_THE_DAEMON" not in log


def test_output_is_capped_with_marker():
    outcome, log = run(wf(step([PY, "-c", "import sys; sys.stdout.write('Q' * 500000)"])),
                       log_max_bytes=10000)
    assert outcome.state is RunState.SUCCEEDED
    lines = log.splitlines()
    assert lines[1] == "Q" * 5000  # the head, then the tail: the same share of the cap
    assert lines[2].startswith("[easyflow] log limit of 10,000 bytes reached")
    assert lines[3:] == ["[easyflow] [… 490,000 bytes dropped …]", "Q" * 5000]


def _alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with open(f"/proc/{pid}/stat") as stat:
        return stat.read().split(") ")[1][0] != "Z"


CALLABLES = '''
import os, sys, time
def hello(*args):
    print("hello", *args, os.environ.get("GREETING"), os.getcwd())
def boom():
    helper()
def helper():
    raise ValueError("bad thing\\nsecond line")
def exit3():
    sys.exit(3)
def slow():
    time.sleep(30)
def run_id():
    print("run", os.environ["EASYFLOW_RUN_ID"])
def leave_children(path):
    import subprocess
    child = subprocess.Popen(["sleep", "300"])
    grandchild = subprocess.Popen(["sh", "-c", "sleep 301 & echo $!"], stdout=subprocess.PIPE)
    orphan = grandchild.stdout.readline().decode().strip()
    grandchild.wait()
    open(path, "w").write(f"{child.pid} {orphan}")
def read_stdin():
    print("read", repr(sys.stdin.read()))
    time.sleep(30)
def spin():
    while True:
        pass
'''


def call_step(target, **fields):
    lines = ["[[steps]]", f"call = {json.dumps(target)}"]
    lines += [f"{k} = {v}" for k, v in fields.items()]
    return "\n".join(lines) + "\n"


def callables(tmp_path):
    (tmp_path / "ef_callables.py").write_text(CALLABLES)
    return json.dumps(str(tmp_path))


def test_call_step_runs_in_process_with_args_env_cwd(tmp_path):
    cwd = callables(tmp_path)
    outcome, log = run(wf(call_step("ef_callables:hello", args='["a", "b"]', cwd=cwd,
                                    env='{ GREETING = "hi" }')))
    assert outcome.state is RunState.SUCCEEDED and outcome.exit_code == 0
    assert f"hello a b hi {tmp_path}\n" in log
    assert os.getcwd() != str(tmp_path) and "GREETING" not in os.environ


def test_call_step_sees_its_run_id_for_the_call_s_duration(tmp_path):
    cwd = callables(tmp_path)
    log = io.BytesIO()
    outcome = execute_workflow(wf(call_step("ef_callables:run_id", cwd=cwd)),
                               RunLimits(timeout=30.0), log, run_id=42)
    assert outcome.state is RunState.SUCCEEDED
    assert "run 42\n" in log.getvalue().decode()
    assert "EASYFLOW_RUN_ID" not in os.environ


def test_processes_a_call_step_starts_are_stopped_and_reaped_when_it_ends(tmp_path):
    become_subreaper()  # as workers and foreground runs are: the orphan comes back to us
    cwd = callables(tmp_path)
    pids = tmp_path / "pids"
    outcome, _ = run(wf(call_step("ef_callables:leave_children", args=f'["{pids}"]', cwd=cwd)))
    assert outcome.state is RunState.SUCCEEDED
    for pid in map(int, pids.read_text().split()):
        with pytest.raises(ProcessLookupError):  # killed, and no zombie left
            os.kill(pid, 0)


def test_call_step_exception_is_a_one_line_failure(tmp_path):
    cwd = callables(tmp_path)
    outcome, log = run(wf(call_step("ef_callables:boom", cwd=cwd) + step(["echo", "never"])))
    assert (outcome.state, outcome.exit_code) == (RunState.FAILED, 1)
    assert outcome.error == "step 'step-1': ValueError: bad thing"
    assert "never" not in log


def test_call_step_exception_leaves_its_traceback_in_the_log(tmp_path):
    cwd = callables(tmp_path)
    _, log = run(wf(call_step("ef_callables:boom", cwd=cwd)))
    traceback = log[log.index("Traceback (most recent call last):"):]
    frames = re.findall(r'File "(.+)", line \d+, in (\w+)', traceback)
    assert [name for _, name in frames] == ["boom", "helper"]  # the step's code, not ours
    assert "ValueError: bad thing\nsecond line\n" in traceback
    assert traceback.endswith("[easyflow] step 'step-1': ValueError: bad thing\n")


def test_call_step_module_that_raises_on_import_leaves_its_traceback(tmp_path):
    (tmp_path / "ef_broken_import.py").write_text("x = 1\nraise RuntimeError('no config')\n")
    outcome, log = run(wf(call_step("ef_broken_import:main", cwd=json.dumps(str(tmp_path)))))
    assert outcome.error == ("step 'step-1': cannot import 'ef_broken_import:main': "
                             "RuntimeError: no config")
    assert re.search(r'File ".*ef_broken_import.py", line 2, in <module>', log)
    _, missing = run(wf(call_step("ef_callables:nothing_here", cwd=callables(tmp_path))))
    assert "Traceback" not in missing  # a name that is not there: the one line says all


def test_call_step_exit_code_and_import_error(tmp_path):
    cwd = callables(tmp_path)
    outcome, _ = run(wf(call_step("ef_callables:exit3", cwd=cwd)))
    assert (outcome.state, outcome.exit_code) == (RunState.FAILED, 3)
    outcome, _ = run(wf(call_step("ef_no_such_module:main", cwd=cwd)))
    assert outcome.state is RunState.FAILED
    assert "cannot import 'ef_no_such_module:main': ModuleNotFoundError" in outcome.error


def test_call_step_timeout_interrupts_sleep_and_busy_loop(tmp_path):
    cwd = callables(tmp_path)
    for target in ("ef_callables:slow", "ef_callables:spin"):
        start = time.monotonic()
        outcome, _ = run(wf(call_step(target, cwd=cwd, timeout='"1s"')))
        assert outcome.state is RunState.TIMED_OUT, target
        assert time.monotonic() - start < 10


def test_secrets_reach_the_step_and_are_masked_in_its_log(tmp_path):
    secret = tmp_path / "s.env"
    secret.write_text("TOKEN=tok-7f3a9\n")
    secret.chmod(0o600)
    outcome, log = run(wf(step("echo token=$TOKEN", shell="true"),
                          extra=f'env_file = "{secret}"'))
    assert outcome.state is RunState.SUCCEEDED
    assert "token=***" in log and "tok-7f3a9" not in log


def test_a_secret_that_cannot_be_read_fails_the_run_before_any_step(tmp_path):
    outcome, log = run(wf(step(["touch", str(tmp_path / "ran")]),
                          extra=f'env_file = "{tmp_path / "none.env"}"'))
    assert outcome.state is RunState.FAILED and "none.env" in outcome.error
    assert "none.env" in log and not (tmp_path / "ran").exists()


def test_a_call_step_s_error_quoting_a_secret_is_masked_where_it_is_stored(tmp_path):
    (tmp_path / "leaky.py").write_text("import os\ndef fail():\n"
                                       "    raise ValueError('bad token ' + os.environ['T'])\n")
    secret = tmp_path / "s.env"
    secret.write_text("T=tok-c4f1e2\n")
    secret.chmod(0o600)
    outcome, log = run(wf(f'[[steps]]\ncall = "leaky:fail"\ncwd = "{tmp_path}"\n',
                          extra=f'env_file = "{secret}"'))
    assert outcome.state is RunState.FAILED and "bad token ***" in outcome.error
    assert "tok-c4f1e2" not in log + outcome.error


def test_a_command_step_is_spawned_at_once_unless_it_must_be_recorded_first(tmp_path):
    """Spawned: in the executing process's session (a worker's own, see pools.py), its cwd
    applied and this process's own left as it was, its program found on the step's PATH, and
    whoever watches told its group afterwards. Held until recorded: in a session of its own."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "where").write_text("#!/bin/sh\necho $(ps -o sid= -p $$) $(pwd)\n")
    (bin_dir / "where").chmod(0o755)
    path = json.dumps(f"{bin_dir}:/usr/bin:/bin")
    spec = wf(step(["where"], cwd=json.dumps(str(tmp_path)), env=f"{{ PATH = {path} }}"))
    told, here = [], os.getcwd()
    log = io.BytesIO()
    outcome = execute_workflow(spec, RunLimits(30.0), log, on_step_spawned=told.append)
    session, cwd = log.getvalue().decode().splitlines()[1].split()
    assert (outcome.state, int(session), cwd, os.getcwd()) == (
        RunState.SUCCEEDED, os.getsid(0), str(tmp_path), here)
    assert len(told) == 1 and told[0] > 0
    parked, log = [], io.BytesIO()
    execute_workflow(spec, RunLimits(30.0), log,
                     on_step_start=lambda step, pgid: parked.append(pgid))
    session, cwd = log.getvalue().decode().splitlines()[1].split()
    assert int(session) == parked[0] != os.getsid(0) and cwd == str(tmp_path)


def test_a_missing_working_directory_or_program_is_127(tmp_path):
    outcome, log = run(wf(step(["true"], cwd=json.dumps(str(tmp_path / "gone")))))
    assert (outcome.state, outcome.exit_code) == (RunState.FAILED, 127)
    assert outcome.error == "step 'step-1': cannot execute 'true': No such file or directory"
    outcome, _ = run(wf(step([str(tmp_path)])))  # a directory: found, but not executable
    assert outcome.exit_code == 127 and "Permission denied" in outcome.error


def test_a_running_step_is_first_checked_soon_after_it_starts():
    """A worker sends the reports it holds back at a check: a silent step that turns out long
    is known to have started long before the usual check interval."""
    checks = []
    began = time.monotonic()
    outcome = execute_workflow(wf(step(["sleep", "1"])), RunLimits(30.0), io.BytesIO(),
                               cancelled=lambda: checks.append(time.monotonic()) is not None)
    assert outcome.state is RunState.SUCCEEDED
    assert len(checks) >= 3 and checks[0] - began < CHECK_S
