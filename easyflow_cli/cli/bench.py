"""`easyflow bench`: measure this box (easyflow_cli/tools/bench.py says what each figure means)."""

from __future__ import annotations

from typing import Any

import typer

from easyflow_cli.cli.output import JSON_OPTION, console, err_console, print_json


def bench(
    as_json: bool = JSON_OPTION,
    quick: bool = typer.Option(False, "--quick", help="A reduced run, in under 20 seconds."),
    report_runs: int | None = typer.Option(
        None, "--report-runs", min=1000,
        help="Runs of history to time the reports over (default 1,000,000; 20,000 with"
             " --quick; 10,000,000 takes several minutes and about 10 GB)."),
    backlog: str | None = typer.Option(
        None, "--backlog", metavar="SIZES",
        help="Eco runs waiting for their window, one dispatch figure per size: e.g. "
             "0,10000,100000,1000000 (the default; 0,10000 with --quick)."),
    schedules: str | None = typer.Option(
        None, "--schedules", metavar="SIZES",
        help="Schedules, one dispatch figure per size: e.g. 0,1000,10000 (the default; "
             "0,1000 with --quick)."),
    cluster: bool = typer.Option(
        False, "--cluster",
        help="Also dispatch and drain through the configured cluster's engine (a coordinator "
             "and workers of its own, in a schema of its own)."),
) -> None:
    """Benchmark easyflow on this box, with its own daemon in a throwaway state directory."""
    from easyflow_cli.core.config import load_config
    from easyflow_cli.core.errors import BadInput, EasyflowError
    from easyflow_cli.tools.bench import BenchError, run_bench
    from easyflow_cli.tools.bench_growth import GrowthSizes

    sizes = GrowthSizes.parse(backlog, schedules, quick=quick)
    engine = load_config().cluster if cluster else None
    if cluster and engine is None:
        raise BadInput("--cluster: no cluster is configured (set [cluster] database_url and "
                       "broker_url in easyflow.toml, or EASYFLOW_DATABASE_URL and "
                       "EASYFLOW_BROKER_URL)")
    try:
        document = run_bench(quick=quick, growth=sizes, report_runs=report_runs,
                             cluster=engine,
                             progress=lambda message: err_console.print(
                                 f"bench: {message}…", highlight=False))
    except BenchError as exc:
        raise EasyflowError(f"bench: {exc}") from None
    if as_json:
        print_json(document)
    else:
        _print_tables(document)


def _print_tables(document: dict[str, Any]) -> None:
    from rich.table import Table

    figures = Table(title="easyflow bench" + (" (quick)" if document["quick"] else ""),
                    header_style="bold")
    for column in ("figure", "median", "p50", "p95", "p99", "samples"):
        figures.add_column(column, justify="left" if column == "figure" else "right")
    for label, dist, unit in _distributions(document):
        figures.add_row(label, *(f"{dist[k]:g} {unit}" for k in ("median", "p50", "p95", "p99")),
                        str(dist["samples"]))
    console.print(figures)
    singles = Table(header_style="bold")
    singles.add_column("figure")
    singles.add_column("value", justify="right")
    for label, value in _single_figures(document):
        singles.add_row(label, value)
    console.print(singles)
    console.print(_growth_table(document["growth"]))
    if "cluster" in document:
        console.print(_cluster_table(document))
    targets = Table(header_style="bold")
    for column in ("target", "measured", "wanted", "met"):
        targets.add_column(column)
    for row in document["targets"]:
        met = {True: "[green]yes[/]", False: "[red]no[/]", None: "-"}[row["met"]]
        targets.add_row(row["figure"], f"{row['value']:g}" if row["value"] is not None else "-",
                        row["target"], met)
    console.print(targets)
    machine = document["machine"]
    console.print(f"{machine['cpus']} CPUs, load average {machine['load_average_before']} before,"
                  f" {machine['load_average_after']} after, {machine['cpu_steal_percent']} % of"
                  " CPU time stolen by the hypervisor", highlight=False)


def _growth_table(growth: dict[str, Any]) -> Any:
    from rich.table import Table

    table = Table(title="real-time dispatch as the waiting work grows", header_style="bold")
    for column in ("waiting", "p50", "p99", "p50 vs none", "daemon CPU per dispatch"):
        table.add_column(column, justify="right")
    for curve, noun in (("backlog", "eco runs"), ("schedules", "schedules")):
        points = growth[curve]
        for point in points:
            p50 = point["dispatch_ms"]["p50"]
            table.add_row(f"{point['size']:,} {noun}", f"{p50:g} ms",
                          f"{point['dispatch_ms']['p99']:g} ms",
                          f"{p50 / points[0]['dispatch_ms']['p50']:.2f}×",
                          f"{point['daemon_cpu_ms_per_dispatch']:g} ms")
    return table


def _cluster_table(document: dict[str, Any]) -> Any:
    from rich.table import Table

    local, cluster = document["dispatch_latency_ms"]["idle"]["callable"], document["cluster"]
    table = Table(title=f"through the cluster ({cluster['workers']} real-time workers) and on "
                        "this box", header_style="bold")
    for column in ("figure", "cluster", "local"):
        table.add_column(column, justify="left" if column == "figure" else "right")
    for key in ("p50", "p99"):
        table.add_row(f"dispatch {key}", f"{cluster['dispatch_ms'][key]:g} ms",
                      f"{local[key]:g} ms")
    table.add_row("drain, callable no-op", f"{cluster['drain']['runs_per_s']:,.0f} runs/s",
                  f"{document['drain']['callable']['runs_per_s']:,.0f} runs/s")
    return table


def _distributions(document: dict[str, Any]) -> list[tuple[str, dict, str]]:
    dispatch = document["dispatch_latency_ms"]
    isolation = document["isolation"]
    return [
        ("dispatch, callable, idle", dispatch["idle"]["callable"], "ms"),
        ("dispatch, /bin/true, idle", dispatch["idle"]["command"], "ms"),
        ("dispatch, callable, 10k eco queued", dispatch["eco_backlog"]["callable"], "ms"),
        ("dispatch, /bin/true, 10k eco queued", dispatch["eco_backlog"]["command"], "ms"),
        ("command's first instruction, 10k eco queued",
         dispatch["eco_backlog"]["command_first_instruction"], "ms"),
        ("  of which `date`'s own start", dispatch["eco_backlog"]["clock_command_own_start"], "ms"),
        ("easyflow --help", document["cli_start_ms"]["help"], "ms"),
        ("run --now --no-wait", document["cli_start_ms"]["run_now_no_wait"], "ms"),
        *((f"why RUN_ID, {kind} run, {document['why']['runs']:,} runs, {clock}",
           document["why"][kind][f"{clock}_ms"], "ms")
          for kind in ("finished", "queued") for clock in ("wall", "cpu")),
        ("CPU-bound step, idle box", isolation["idle_s"], "s"),
        ("CPU-bound step, eco saturating", isolation["eco_saturated_s"], "s"),
    ]


def _median_of(middle: float, measures: list[float]) -> str:
    return f"{middle:,.0f} runs/s ({' / '.join(f'{m:,.0f}' for m in measures)})"


def _single_figures(document: dict[str, Any]) -> list[tuple[str, str]]:
    from easyflow_cli.tools.bench_reports import REPORT_COMMANDS

    drain, enqueue = document["drain"], document["enqueue"]
    idle, report = document["idle_daemon"], document["reports"]
    rows = [
        (f"drain, callable no-op ({drain['callable']['runs']} runs)",
         f"{drain['callable']['runs_per_s']:,.0f} runs/s"),
        (f"drain, /bin/true ({drain['command']['runs']} runs, median of "
         f"{len(drain['command']['drains_runs_per_s'])})",
         _median_of(drain["command"]["runs_per_s"], drain["command"]["drains_runs_per_s"])),
        ("spawn ceiling (2 posix_spawn loops of /bin/true, in turn with the drains)",
         _median_of(drain["command"]["spawn_ceiling_runs_per_s"],
                    drain["command"]["spawn_ceilings_runs_per_s"])
         + f" (drain: {drain['command']['percent_of_ceiling']:g} % of it)"),
        (f"enqueue, library bulk ({enqueue['library_bulk']['runs']:,} runs)",
         f"{enqueue['library_bulk']['runs_per_s']:,.0f} runs/s"),
        (f"enqueue, CLI processes ({enqueue['cli']['runs']} runs)",
         f"{enqueue['cli']['runs_per_s']:,.1f} runs/s"),
        (f"bulk submit through one CLI ({enqueue['cli_bulk']['runs']:,} runs)",
         f"{enqueue['cli_bulk']['runs_per_s']:,.0f} runs/s"),
        (f"idle daemon + workers, CPU over {idle['seconds']:g} s",
         f"{idle['cpu_s']:g} s ({idle['cpu_percent_of_core']:g} % of a core)"),
        ("idle daemon + workers, wake-ups", str(idle["wakeups"])),
    ]
    rows += [(f"RSS, {name}", ", ".join(f"{mb:g}" for mb in group["rss_mb"]) + " MB")
             for name, group in idle["by_process"].items()]
    rows += [
        (f"report costs, {report['runs']:,} runs, library", f"{report['library_s']:g} s"),
        *((f"{' '.join(REPORT_COMMANDS[name])}, {report['runs']:,} runs, CLI process:"
           " wall / CPU", f"{seconds:g} s / {report['cli_cpu_s'][name]:g} s")
          for name, seconds in report["cli_s"].items()),
        (f"database per 1,000,000 runs ({report['runs']:,} runs, summarized in"
         f" {report['summarize_s']:g} s)", f"{report['database_mb_per_1m_runs']:,g} MiB"),
        (f"metrics, {report['runs']:,} runs: `easyflow metrics` process / the daemon's first"
         f" scrape / its next, {report['metrics_scrape']['new_runs']:,} runs later",
         f"{report['metrics_cli_s']:g} s / {report['metrics_scrape']['first_s']:g} s / "
         f"{report['metrics_scrape']['next_s']:g} s"),
        ("CPU-bound step, eco saturating / idle", f"{document['isolation']['ratio']:g}×"),
        *((f"why RUN_ID, {kind} run, first process: wall / CPU",
           f"{cold['wall']:g} ms / {cold['cpu']:g} ms")
          for kind, cold in ((k, document["why"][k]["cold_ms"]) for k in ("finished", "queued"))),
    ]
    return rows
