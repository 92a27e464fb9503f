"""`easyflow why RUN_ID`: why a run waits, or ran when it did, in a few lines (or `--json`).

No Rich here: an answer is wanted at once, and plain lines need none of it.
"""

from __future__ import annotations

from typing import Any

import typer

from easyflow_cli.cli.common import open_store
from easyflow_cli.cli.output import JSON_OPTION, print_json, print_line, short_time
from easyflow_cli.core.durations import format_duration
from easyflow_cli.core.paths import state_dir
from easyflow_cli.core.timeutil import utcnow
from easyflow_cli.core.words import plural

STATES = {"queued": "is queued", "running": "is running", "succeeded": "succeeded",
          "failed": "failed", "timed_out": "timed out", "cancelled": "was cancelled"}


def why(run_id: int = typer.Argument(..., metavar="RUN_ID", help="The run to explain."),
        as_json: bool = JSON_OPTION) -> None:
    """Why this run waits, or ran when it did: its mode and why, the window it waits for and
    its price, the p90 its plan used, when it would be promoted, its place in the queue, the
    pools' workers in use and its workflow's concurrency limit."""
    from easyflow_cli.cli.loaded_series import loaded_tariff
    from easyflow_cli.core.config import load_config
    from easyflow_cli.reporting.why import explain_run

    config = load_config()
    with open_store() as store:
        answer = explain_run(store, config, run_id, utcnow(), tariff=loaded_tariff(config))
    answer["daemon_up"] = _daemon_up() if answer["state"] == "queued" else None
    if as_json:
        print_json(answer)
        return
    for line in lines(answer):
        print_line(line)


def _daemon_up() -> bool:
    """Asked only for a queued run, which waits for a daemon (the socket's client is imported
    only then: `why` answers as fast as the process starts)."""
    from easyflow_cli.runtime.client import listening

    return listening(state_dir())


def lines(answer: dict[str, Any]) -> list[str]:
    """The answer for people: a headline, then one line per thing that decided its start."""
    said = [f"run {answer['run']} ({answer['workflow']}) {STATES[answer['state']]}, "
            f"{answer['mode']}: {answer['because']}"]
    for part in (_planned, _window, _learned, _promotion, _queue, _pools, _limit, _daemon, _ran):
        line = part(answer)
        if line:
            said.append(f"  {line}")
    return said


def _planned(answer: dict[str, Any]) -> str | None:
    """The eco planner's reason for its start, as it recorded it."""
    return None if answer["planned"] is None else f"planned: {answer['planned']}"


def _window(answer: dict[str, Any]) -> str | None:
    window = answer["window"]
    if window is None:
        return None
    from easyflow_cli.cli.money import money_column

    there, now = money_column([window["cost"], window["real_time_cost"]], window["currency"])[0]
    held = "waits for" if window["waiting"] else "was held for"
    tariff = " (off-peak)" if window["off_peak"] else ""
    return (f"window: {held} {short_time(window['not_before'])}{tariff}: {there} there against "
            f"{now} as real-time now, by {window['priced_by']}")


def _learned(answer: dict[str, Any]) -> str:
    learned = answer["learned"]
    runs = f"{learned['mode']} runs" if learned["mode"] else "runs (of any mode)"
    if not learned["enough"]:
        return (f"durations: {learned['runs']} successful {runs}, too few to learn from: "
                "planned with the median of its recent runs, or the default duration")
    error = learned["error_s"]
    off = f", predictions off by {format_duration(error)} typically" if error is not None else ""
    return (f"durations: p90 {format_duration(learned['p90_s'])} (p50 "
            f"{format_duration(learned['p50_s'])}) over its last {learned['runs']} "
            f"successful {runs}{off}")


def _promotion(answer: dict[str, Any]) -> str | None:
    if answer["state"] != "queued":
        return None
    if answer["promote_at"] is None:
        return ("promotion: none (no deadline)" if answer["deadline"] is None
                else "promotion: none (already real-time)")
    return (f"promotion: becomes real-time at {short_time(answer['promote_at'])} if still "
            f"waiting (deadline {short_time(answer['deadline'])})")


def _queue(answer: dict[str, Any]) -> str | None:
    queue, mode = answer["queue"], answer["mode"]
    if queue is None:
        return None
    ahead = queue["ahead"]
    where = f"{plural(ahead, f'ready {mode} run')} ahead of it" if ahead else "next in line"
    ready = "ready" if queue["ready"] else "not ready yet"
    return f"queue: {ready}, {where} ({plural(queue['queued'], f'{mode} run')} queued)"


def _pools(answer: dict[str, Any]) -> str | None:
    pools = answer["pools"]
    if pools is None:
        return None
    shown = ", ".join(f"{mode} {p['running']}/{p['workers']}" for mode, p in pools.items())
    own = pools[answer["mode"]]
    full = " (its pool is full)" if own["running"] >= own["workers"] else ""
    return f"pools busy: {shown}{full}"


def _limit(answer: dict[str, Any]) -> str | None:
    limit = answer["limit"]
    if limit is None:
        return None
    held = (": it waits for one to end" if answer["state"] == "queued"
            and limit["running"] >= limit["max_concurrent"] else "")
    return f"limit: max_concurrent = {limit['max_concurrent']}, {limit['running']} running{held}"


def _daemon(answer: dict[str, Any]) -> str | None:
    if answer["state"] != "queued" or answer["daemon_up"]:
        return None
    return "daemon: not running: it waits in the queue until one starts"


def _ran(answer: dict[str, Any]) -> str | None:
    if answer["started_at"] is None:
        return None
    waited = answer["queue_wait_s"]
    line = f"ran: started {short_time(answer['started_at'])}"
    if waited is not None:
        line += f", {format_duration(waited)} after it was queued"
    if answer["deadline_met"] is not None:
        line += ", deadline met" if answer["deadline_met"] else ", deadline missed"
    return line + (f", on {answer['host']}" if answer["host"] else "")
