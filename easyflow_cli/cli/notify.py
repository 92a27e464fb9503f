"""`easyflow notify test` and `easyflow notifications list`: try a workflow's channels, and see
what was sent and how its delivery went."""

from __future__ import annotations

import typer

from easyflow_cli.cli.common import open_store
from easyflow_cli.cli.group import EasyflowGroup
from easyflow_cli.cli.output import (
    CSV_OPTION,
    JSON_OPTION,
    render_rows,
    short_time,
)

notify_app = typer.Typer(cls=EasyflowGroup, no_args_is_help=True, rich_markup_mode=None,
                         help="Try a workflow's notification channels.")
notifications_app = typer.Typer(cls=EasyflowGroup, no_args_is_help=True,
                                rich_markup_mode=None,
                                help="What was notified, and how its delivery went.")

LIST_COLUMNS = ["id", "created_at", "event", "workflow", "run_id", "channel", "state",
                "attempts", "answer"]
STATE_STYLE = {"delivered": "green", "pending": "yellow", "failed": "red"}


@notify_app.command("test")
def test(workflow: str = typer.Argument(..., help="The workflow whose channels to try."),
         as_json: bool = JSON_OPTION, as_csv: bool = CSV_OPTION) -> None:
    """Send a test event through each of the workflow's channels now, and say what each
    answered (exit 1 if any failed)."""
    from easyflow_cli.core.config import load_config
    from easyflow_cli.core.timeutil import utcnow
    from easyflow_cli.runtime.notify_trial import try_channels

    config = load_config()
    with open_store() as store:
        answers = [a.to_json() for a in try_channels(store, config, workflow, utcnow())]
    render_rows(answers, ["channel", "ok", "answer"], as_json=as_json, as_csv=as_csv,
                formatters={"ok": lambda ok: "[green]ok[/]" if ok else "[red]failed[/]"})
    if not all(a["ok"] for a in answers):
        raise typer.Exit(1)


@notifications_app.command("list")
def list_(
    limit: int = typer.Option(50, "--limit", "-n", min=1, max=1_000_000,
                              help="At most this many, newest first."),
    as_json: bool = JSON_OPTION,
    as_csv: bool = CSV_OPTION,
) -> None:
    """Recent notification events, one row per channel, with their delivery state."""
    with open_store() as store:
        rows = store.outbox.recent(limit)
    render_rows(rows, LIST_COLUMNS, as_json=as_json, as_csv=as_csv, empty="no notifications",
                formatters={"created_at": short_time,
                            "state": lambda s: f"[{STATE_STYLE.get(s, '')}]{s}[/]"})
