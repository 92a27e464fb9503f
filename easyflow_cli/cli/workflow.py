"""`easyflow workflow ...`: register, list, show, remove and export workflows."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from easyflow_cli.cli.common import open_store
from easyflow_cli.cli.group import EasyflowGroup
from easyflow_cli.cli.output import CSV_OPTION, JSON_OPTION, err_console, print_json, render_rows
from easyflow_cli.core.errors import BadInput
from easyflow_cli.core.timeutil import utcnow
from easyflow_cli.core.words import plural

if TYPE_CHECKING:
    from easyflow_cli.core.spec import WorkflowSpec
    from easyflow_cli.storage.backend import Backend

app = typer.Typer(cls=EasyflowGroup, no_args_is_help=True, rich_markup_mode=None,
                  help="Register and inspect workflows (TOML files).")


@app.command("add")
def add(
    paths: list[Path] = typer.Argument(..., help="Workflow files, or directories of *.toml."),
    replace: bool = typer.Option(False, "--replace",
                                 help="Replace workflows of the same name added from other "
                                      "files."),
) -> None:
    """Validate and register workflows. All or nothing: one bad file and none are added.

    A file added again updates its workflows. A workflow whose name is already registered
    from another file is only replaced with --replace.
    """
    from easyflow_cli.core.workflow_files import load_workflow_files
    from easyflow_cli.scheduling.scheduler import prime_schedules

    specs = load_workflow_files(paths)
    with open_store() as store:
        known = {row["name"]: row["source_file"] for row in store.workflow_rows()}
        if not replace:
            _refuse_other_files(specs, known)
        now = utcnow()
        store.save_workflows(specs, now)
        prime_schedules(store, now)
    for spec in specs:
        verb = "updated" if spec.name in known else "added"
        err_console.print(f"{verb} {spec.name} ({plural(len(spec.steps), 'step')}, "
                          f"{plural(len(spec.schedules), 'schedule')}) from {spec.source_file}")
    _notify_daemon()


def _refuse_other_files(specs: list[WorkflowSpec], known: dict[str, str | None]) -> None:
    """Names registered from another file are not taken over silently (exit 2)."""
    taken = [spec for spec in specs if spec.name in known and known[spec.name] != spec.source_file]
    if taken:
        first = taken[0]
        more = f" (and {len(taken) - 1} more)" if len(taken) > 1 else ""
        raise BadInput(f"workflow {first.name!r} is already registered from "
                       f"{known[first.name] or 'no file'}{more}; add --replace to replace it "
                       f"with {first.source_file}")


def _notify_daemon() -> None:
    """Ask a running daemon to reload; without one there is nothing to do."""
    from easyflow_cli.runtime.client import notify_reload

    notify_reload()


@app.command("list")
def list_(as_json: bool = JSON_OPTION, as_csv: bool = CSV_OPTION) -> None:
    """List registered workflows."""
    with open_store() as store:
        rows = [_summary(row, store) for row in store.workflow_rows()]
    # New columns go last: scripts read the CSV by position too.
    render_rows(rows, ["name", "execution_mode", "cost_priority", "steps", "schedules",
                       "description", "max_concurrent", "disabled"],
                as_json=as_json, as_csv=as_csv,
                empty="no workflows registered (easyflow workflow add config/workflows)",
                formatters={"execution_mode": lambda v: v or "auto"})


def _summary(row: dict[str, Any], store: Backend) -> dict[str, Any]:
    spec = json.loads(row["spec_json"])
    return {
        "name": row["name"], "description": row["description"],
        "execution_mode": row["execution_mode"], "cost_priority": row["cost_priority"],
        "steps": len(spec["steps"]), "schedules": len(store.schedule_rows(row["name"])),
        "max_concurrent": row["max_concurrent"], "disabled": row["disabled"],
        "source_file": row["source_file"], "content_hash": row["content_hash"],
        "added_at": row["added_at"], "updated_at": row["updated_at"],
    }


@app.command("show")
def show(name: str, as_json: bool = JSON_OPTION) -> None:
    """Show one workflow: its definition, where it came from, and its learned durations."""
    from easyflow_cli.cli.learned_view import learned_json, print_learned
    from easyflow_cli.core.spec import spec_to_dict, to_toml
    from easyflow_cli.storage.learned_durations import learned_by_mode

    with open_store() as store:
        spec = store.get_workflow(name)
        schedules = store.schedule_rows(name)
        disabled = store.workflow_disabled(name)
        learned = learned_by_mode(store.queue, name)
    if as_json:
        print_json({"spec": spec_to_dict(spec), "source_file": spec.source_file,
                    "content_hash": spec.content_hash, "disabled": disabled,
                    "schedules": schedules, "learned": learned_json(learned)})
        return
    state = " (disabled: `easyflow workflow enable` lets it run)" if disabled else ""
    err_console.print(f"# {spec.name} from {spec.source_file}{state}", markup=False)
    typer.echo(to_toml(spec), nl=False)
    if schedules:
        from easyflow_cli.cli.schedule import list_ as list_schedules

        typer.echo()
        list_schedules(workflow=name, as_json=False, as_csv=False)
    print_learned(learned)


@app.command("disable")
def disable(name: str) -> None:
    """Stop a workflow from running: its schedules do not fire and `run --now` refuses it
    (unless --force). Runs already queued still run. Adding its file again keeps it disabled."""
    from easyflow_cli.scheduling.scheduler import disable_workflow

    with open_store() as store:
        disable_workflow(store, name)
    err_console.print(f"disabled {name}", highlight=False)
    _notify_daemon()


@app.command("enable")
def enable(name: str) -> None:
    """Let a disabled workflow run again; its schedules fire from now on (what they missed
    meanwhile is not caught up)."""
    from easyflow_cli.scheduling.scheduler import enable_workflow

    with open_store() as store:
        enable_workflow(store, name, utcnow())
    err_console.print(f"enabled {name}", highlight=False)
    _notify_daemon()


@app.command("remove")
def remove(name: str) -> None:
    """Remove a workflow and its schedules; its queued runs are cancelled, history is kept."""
    with open_store() as store:
        cancelled = store.remove_workflow(name, utcnow())
    err_console.print(f"removed {name}" + (f", cancelled {plural(cancelled, 'queued run')}"
                                           if cancelled else ""))
    _notify_daemon()


@app.command("export")
def export(
    name: str,
    output: Path | None = typer.Option(None, "-o", "--output",
                                       help="Write to this file, not stdout."),
) -> None:
    """Write a workflow out as TOML: every schedule (also those added since), and each step's
    folder spelled out, so the file gives the same workflow when added from anywhere."""
    from easyflow_cli.core.spec import portable, to_toml

    with open_store() as store:
        text = to_toml(portable(store.get_workflow(name), store.schedule_specs(name)))
    if output is None:
        typer.echo(text, nl=False)
    else:
        try:
            output.write_text(text)
        except OSError as exc:
            raise BadInput(f"-o: cannot write {output}: {exc.strerror}") from None
        err_console.print(f"wrote {output}")
