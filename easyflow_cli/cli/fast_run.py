"""`easyflow run NAME --now --no-wait [--json] [--mode M] [--deadline D]` without Typer.

Scripts submit work with this in loops, and importing Typer alone costs more than the whole
command may take. Only an argv read here exactly, with a daemon listening, is handled; for
anything else `submit` returns None and the Typer app runs instead. Nothing is printed or
written before the run is committed, so when anything fails before that (an unknown workflow,
a bad deadline, a bad config file, a database that cannot be read), the Typer app does it all
again and reports the problem its own way. Errors after the commit are reported as Typer's
`run` reports them (`failures.py`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, NamedTuple

from easyflow_cli.cli.common import open_store
from easyflow_cli.cli.submit import enqueue_manual_run, plan_manual_run, print_queued
from easyflow_cli.core.config import load_config
from easyflow_cli.core.model import Mode
from easyflow_cli.core.paths import state_dir
from easyflow_cli.runtime.client import connect, exchange, wake_request

if TYPE_CHECKING:
    import socket
    from pathlib import Path

    from easyflow_cli.core.config import Config
    from easyflow_cli.storage.store import Store

FLAGS = ("--now", "--no-wait", "--json")
VALUED = ("--mode", "--deadline")
MODES = tuple(mode.value for mode in Mode)


class Request(NamedTuple):
    name: str
    mode: Mode | None
    deadline: str | None
    as_json: bool


def parse(args: list[str]) -> Request | None:
    """The request in `run`'s arguments (after the word `run`), or None if this is not exactly
    a `--now --no-wait` submission in a form read here."""
    name = None
    options: dict[str, str | None] = {}
    rest = iter(args)
    for arg in rest:
        if arg in options:
            return None  # given twice
        if arg in FLAGS:
            options[arg] = None
        elif arg in VALUED:
            value = next(rest, None)
            if value is None or value.startswith("-"):
                return None
            options[arg] = value
        elif name is None and not arg.startswith("-"):
            name = arg
        else:
            return None
    mode = options.get("--mode")
    if name is None or "--now" not in options or "--no-wait" not in options or (
            mode is not None and mode not in MODES):
        return None
    return Request(name, Mode(mode) if mode else None, options.get("--deadline"),
                   "--json" in options)


def submit(args: list[str]) -> int | None:
    """Queue the run, wake the daemon, print what Typer's `run` prints; the exit code, or None
    when the Typer app must handle this instead."""
    request = parse(args)
    if request is None:
        return None
    home = state_dir()
    daemon = connect(home)
    if daemon is None:
        return None  # no daemon: the Typer app runs the workflow in the foreground
    with daemon:
        try:
            config = load_config()
            store = open_store()
        except Exception:
            return None
        with store:
            return _submit(request, home, daemon, config, store)


def _submit(request: Request, home: Path, daemon: socket.socket, config: Config,
            store: Store) -> int | None:
    try:
        spec = store.get_workflow(request.name)
        planned = plan_manual_run(store, spec, config, mode=request.mode,
                                  deadline=request.deadline)
    except Exception:
        return None  # nothing written yet: the Typer app does it again and reports the error
    try:
        queued = enqueue_manual_run(store, request.name, planned)
        if exchange(daemon, wake_request([queued.id])) is None:
            # The daemon stopped answering since we connected: as Typer's `run` does then.
            from easyflow_cli.cli.run import run_here

            run_here(store, home, queued, spec, config, request.as_json)
        print_queued(store.queue.get(queued.id), request.as_json)
        return 0
    except Exception as exc:
        from easyflow_cli.cli.failures import exit_code_of  # loads Typer and Rich: errors only

        return exit_code_of(exc)
