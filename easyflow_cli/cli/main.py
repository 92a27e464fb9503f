"""The `easyflow` command, and its console script's entry: the Typer app whose commands are
imported only when one is used (`lazy_group`); errors become exit codes in `group`."""

from __future__ import annotations

import typer

from easyflow_cli import __version__
from easyflow_cli.cli.group import HELP_OPTION_NAMES
from easyflow_cli.cli.lazy_group import LazyCommand, LazyGroup

# In the order `easyflow --help` lists them. A summary is the command's help up to the end of
# its first sentence (tests/cli/test_lazy_group.py holds each to its command's).
COMMANDS = {
    "run": LazyCommand("easyflow_cli.cli.run:run", "Run a workflow now."),
    "logs": LazyCommand("easyflow_cli.cli.runs:logs",
                        "Print the output a run's steps wrote (kept under the state directory)."),
    "daemon": LazyCommand("easyflow_cli.cli.daemon:daemon",
                          "Run the scheduler daemon in the foreground (systemd's Type=notify "
                          "service); with a [cluster], the coordinator of its workers "
                          "(docs/cluster.md)."),
    "status": LazyCommand("easyflow_cli.cli.daemon:status",
                          "Is the daemon up? Its pools, queue depths, next schedule fires and the "
                          "runs running now."),
    "metrics": LazyCommand("easyflow_cli.cli.metrics:metrics",
                           "Print the current metrics in the Prometheus text format."),
    "demo": LazyCommand("easyflow_cli.cli.demo:demo",
                        "Register the examples, run each once in every mode through a daemon, "
                        "show the reports."),
    "bench": LazyCommand("easyflow_cli.cli.bench:bench",
                         "Benchmark easyflow on this box, with its own daemon in a throwaway "
                         "state directory."),
    "simulate": LazyCommand("easyflow_cli.cli.simulate:simulate",
                            "Replay the period's runs under a policy: projected cost, carbon, "
                            "deadline misses and waits, beside what happened and the best "
                            "possible."),
    "why": LazyCommand("easyflow_cli.cli.why:why",
                       "Why this run waits, or ran when it did: its mode and why, the window it "
                       "waits for and its price, the p90 its plan used, when it would be "
                       "promoted, its place in the queue, the pools' workers in use and its "
                       "workflow's concurrency limit."),
    "worker": LazyCommand("easyflow_cli.cli.worker:worker",
                          "Execute the runs a cluster's coordinator dispatches to a pool, on "
                          "this machine."),
    "workflow": LazyCommand("easyflow_cli.cli.workflow:app",
                            "Register and inspect workflows (TOML files)."),
    "runs": LazyCommand("easyflow_cli.cli.runs:app", "List and inspect runs."),
    "schedule": LazyCommand("easyflow_cli.cli.schedule:app",
                            "Schedule workflows: cron, every, at."),
    "report": LazyCommand("easyflow_cli.cli.report:app",
                          "Reports: costs and savings, latency, pool use, advice."),
    "notify": LazyCommand("easyflow_cli.cli.notify:notify_app",
                          "Try a workflow's notification channels."),
    "notifications": LazyCommand("easyflow_cli.cli.notify:notifications_app",
                                 "What was notified, and how its delivery went."),
}


class RootGroup(LazyGroup):
    """`easyflow`: the commands of `COMMANDS`."""

    table = COMMANDS


# Plain (Click) help in every group: Typer's Rich help would import rich.markdown and
# markdown-it, the largest part of what `easyflow --help` would load.
app = typer.Typer(
    cls=RootGroup, no_args_is_help=True, add_completion=False, rich_markup_mode=None,
    help="easyflow: a cost-aware workflow scheduler. Register workflows from TOML, run them "
         "now or on a schedule, in real-time, balanced or eco mode.",
    context_settings={"help_option_names": HELP_OPTION_NAMES},
)


def _version(value: bool) -> None:
    if value:
        print(f"easyflow {__version__}")
        raise typer.Exit()


@app.callback()
def root(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True,
                                 help="Show the version and exit."),
) -> None:
    """easyflow: a cost-aware workflow scheduler."""


def main() -> None:
    app()
