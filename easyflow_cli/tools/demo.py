"""`easyflow demo`: a newcomer's first look at easyflow, short enough to watch to the end.

It registers the example workflows, starts a real daemon on the state directory, submits each
example once in every mode, lets a short schedule fire a few times (those runs resolve to eco),
waits until everything has settled, stops the daemon with SIGTERM and leaves the runs behind for
`runs list` and the reports. Everything it does is what a user could do by hand with `workflow
add`, `daemon`, `schedule add` and `run --now --mode`; it only saves the typing.
"""

from __future__ import annotations

import contextlib
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from easyflow_cli.core.config import load_config
from easyflow_cli.core.durations import format_duration
from easyflow_cli.core.errors import EasyflowError
from easyflow_cli.core.model import Mode, Run, RunState, Trigger
from easyflow_cli.core.paths import ensure_state_dir
from easyflow_cli.core.planning import QueuePolicy, plan_run
from easyflow_cli.core.spec import ScheduleSpec, WorkflowSpec
from easyflow_cli.core.timeutil import utcnow
from easyflow_cli.core.workflow_files import load_workflow_files
from easyflow_cli.runtime.client import daemon_status, wake
from easyflow_cli.scheduling.scheduler import add_schedule, prime_schedules
from easyflow_cli.storage.store import Store
from easyflow_cli.tools.local_daemon import start_daemon, stop_daemon

# Eco work normally waits for the off-peak window; the demo lets it run now so that it ends while
# the newcomer watches. The tariff in [costs] still prices each run by when it actually ran.
DEMO_CONFIG = """\
# Written by `easyflow demo`. Eco runs don't wait for the off-peak window here.
[pools.eco]
off_peak = ""

[daemon]
drain_grace = "10s"
"""
SCHEDULE_EVERY = 2.0
SCHEDULED_RUNS = 3
SETTLED = {RunState.SUCCEEDED, RunState.FAILED, RunState.TIMED_OUT, RunState.CANCELLED}


class DemoError(EasyflowError):
    exit_code = 1


@dataclass
class DemoRun:
    """What the demo submitted and scheduled, so it knows when everything has settled."""

    home: Path
    run_ids: list[int] = field(default_factory=list)
    schedule_id: int | None = None
    schedule_workflow: str | None = None


def register_examples(store: Store, paths: list[Path]) -> list[WorkflowSpec]:
    specs = load_workflow_files(paths)
    now = utcnow()
    store.save_workflows(specs, now)
    prime_schedules(store, now)
    return specs


def add_demo_schedule(store: Store, demo: DemoRun, workflow: str) -> None:
    """A schedule every few seconds: its runs get trigger `schedule`, hence mode eco."""
    now = utcnow()
    every = format_duration(SCHEDULE_EVERY)
    demo.schedule_id = add_schedule(store, workflow, ScheduleSpec("every", every), now)
    demo.schedule_workflow = workflow


def submit_each_mode(store: Store, demo: DemoRun, specs: list[WorkflowSpec]) -> None:
    """Every example once per mode, as `run NAME --now --mode MODE` would queue it."""
    config = load_config()
    policy = QueuePolicy(config.promote_within, None)
    for spec in specs:
        for mode in Mode:
            planned = plan_run(spec, trigger=Trigger.MANUAL, now=utcnow(), policy=policy,
                               override=mode)
            demo.run_ids.extend(store.queue.enqueue([planned]))


def scheduled_runs(store: Store, demo: DemoRun) -> list[Run]:
    runs = store.queue.latest(workflow=demo.schedule_workflow, limit=1000)
    return [r for r in runs if r.schedule_id == demo.schedule_id]


def is_settled(store: Store, demo: DemoRun) -> bool:
    if any(store.queue.get(i).state not in SETTLED for i in demo.run_ids):
        return False
    done = [r for r in scheduled_runs(store, demo) if r.state in SETTLED]
    return len(done) >= SCHEDULED_RUNS


def _batch_workflow(specs: list[WorkflowSpec]) -> WorkflowSpec:
    """The example that is scheduled and leaves its mode to the trigger: the eco candidate."""
    scheduled = [s for s in specs if s.schedules and s.execution_mode is None]
    return (scheduled or specs)[0]


def start_demo_daemon(home: Path) -> subprocess.Popen:
    config_path = home / "demo.toml"
    config_path.write_text(DEMO_CONFIG)
    return start_daemon(home, config_path, home / "demo-daemon.log")


def wait_until(predicate: Callable[[], bool], timeout: float, daemon: subprocess.Popen,
               home: Path) -> bool:
    """Poll until `predicate` holds; False after `timeout`; an error if the daemon dies."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if daemon.poll() is not None:
            raise DemoError(f"the daemon exited with status {daemon.returncode}; "
                            f"see {home / 'demo-daemon.log'}")
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.1)
    return True


def _workers_ready(home: Path) -> bool:
    """The daemon answers and every pool's workers have booted (so timings are steady-state)."""
    status = daemon_status(home)
    return status is not None and all(p["ready"] >= p["size"] for p in status["pools"].values())


def run_demo(home: Path, paths: list[Path], timeout: float,
             say: Callable[[str], None]) -> DemoRun:
    """Register, start a daemon, submit, wait, stop. The runs stay in `home` for the reports."""
    ensure_state_dir(home)
    if daemon_status(home) is not None:
        raise DemoError(f"a daemon is already running on {home}; the demo starts its own: "
                        "set EASYFLOW_HOME to a new directory")
    demo = DemoRun(home)
    with Store.open(home) as store:
        specs = register_examples(store, paths)
        say(f"registered {len(specs)} workflows: {', '.join(s.name for s in specs)}")
        add_demo_schedule(store, demo, _batch_workflow(specs).name)
        daemon = start_demo_daemon(home)
        try:
            if not wait_until(lambda: _workers_ready(home), 30, daemon, home):
                raise DemoError(f"the daemon did not start; see {home / 'demo-daemon.log'}")
            say(f"daemon {daemon.pid} started; schedule {demo.schedule_id} fires "
                f"{demo.schedule_workflow} every {SCHEDULE_EVERY:.0f}s (eco)")
            submit_each_mode(store, demo, specs)
            say(f"submitted {len(demo.run_ids)} runs: each workflow once in every mode")
            wake(home)
            if not wait_until(lambda: is_settled(store, demo), timeout, daemon, home):
                say(f"not everything finished within {timeout:.0f}s; stopping anyway")
        finally:
            with contextlib.suppress(EasyflowError):
                if demo.schedule_id is not None:
                    store.delete_schedule(demo.schedule_id)
            status = stop_daemon(daemon)
        say(f"daemon stopped (exit status {status})")
    return demo
