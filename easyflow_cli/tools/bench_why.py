"""`easyflow why RUN_ID` over a history of 10,000 runs, timed as whole processes: a finished
run and a queued eco run, each asked once cold (the first process to ask) and then warm."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from easyflow_cli.core.model import Trigger
from easyflow_cli.core.planning import QueuePolicy, plan_run
from easyflow_cli.core.spec import parse_workflow_text
from easyflow_cli.core.timeutil import utcnow
from easyflow_cli.storage.store import Store
from easyflow_cli.tools.bench_cli import cache_bytecode, cli_process_times
from easyflow_cli.tools.bench_daemon import WORKFLOWS
from easyflow_cli.tools.bench_figures import distribution
from easyflow_cli.tools.bench_reports import seed_report_history

WHY_HISTORY = 10_000


def why_at_scale(root: Path, samples: int, runs: int = WHY_HISTORY) -> dict[str, Any]:
    """`why` over `runs` finished runs plus one queued eco run: for each of a finished run
    (near the newest) and the queued one, the cold process's wall and CPU milliseconds, and
    the distributions of `samples` warm ones; and whether the processes read our modules'
    cached bytecode, as an installed package's do."""
    home = root / "why-home"
    seed_report_history(home, runs)
    queued = _queue_eco_run(home)
    asked = {"finished": runs - runs // 50, "queued": queued}
    cached = cache_bytecode()
    return {"runs": runs, "bytecode_cached": cached,
            **{kind: _timed(["why", str(run_id)], home, samples) for kind, run_id in asked.items()}}


def _queue_eco_run(home: Path) -> int:
    """One scheduled (so eco) run of a registered workflow, waiting for its window; its id."""
    spec = parse_workflow_text('name = "bench-noop"\n' + WORKFLOWS["bench-noop"])
    with Store.open(home) as store:
        store.save_workflows([spec], utcnow())
        planned = plan_run(spec, trigger=Trigger.SCHEDULE, now=utcnow(), policy=QueuePolicy())
        return store.queue.enqueue([planned])[0]


def _timed(args: list[str], home: Path, samples: int) -> dict[str, Any]:
    (cold_wall, cold_cpu), *warm = cli_process_times(args, home, samples + 1)
    return {"cold_ms": {"wall": round(cold_wall, 1), "cpu": round(cold_cpu, 1)},
            "wall_ms": distribution([wall for wall, _ in warm], 1),
            "cpu_ms": distribution([cpu for _, cpu in warm], 1)}
