"""What `workflow show` says of a workflow's learned durations: a row for its runs in any mode
and one per mode it ran in, with their basis (runs, window) and accuracy."""

from __future__ import annotations

from typing import Any

from easyflow_cli.cli.output import console, render_rows, seconds
from easyflow_cli.core.learned import MIN_RUNS, LearnedDurations, Spread
from easyflow_cli.core.model import Mode

COLUMNS = ["mode", "runs", "window", "p50", "p90", "cpu p50", "energy p90", "off by"]
WINDOW_FORMAT = "%m-%d %H:%M"


def learned_json(learned: dict[Mode | None, LearnedDurations]) -> dict[str, Any]:
    overall = learned[None]
    return overall.as_json() | {
        "min_runs": MIN_RUNS,
        "by_mode": {mode.value: figures.as_json() for mode, figures in learned.items() if mode},
    }


def print_learned(learned: dict[Mode | None, LearnedDurations]) -> None:
    overall = learned[None]
    console.print()
    if not overall.runs:
        console.print("Learned durations: no successful run yet; quotes and promotion assume "
                      "the default duration.")
        return
    # The row over all modes only when there are several: with one it says the same.
    shown = learned if len(learned) > 2 else {m: f for m, f in learned.items() if m}
    rows = [_row(mode.value if mode else "any", figures) for mode, figures in shown.items()]
    render_rows(rows, COLUMNS, as_json=False, as_csv=False,
                title="Learned durations (off by: the median error of the p50 predicted)")
    if not overall.enough:
        console.print(f"Fewer than {MIN_RUNS} successful runs: nothing learned yet; quotes and "
                      "promotion use their plain median.")


def _row(mode: str, figures: LearnedDurations) -> dict[str, str]:
    return {"mode": mode, "runs": str(figures.runs), "window": _window(figures),
            "p50": _p(figures.duration, 50), "p90": _p(figures.duration, 90),
            "cpu p50": _p(figures.cpu, 50),
            "energy p90": "-" if figures.energy is None else f"{figures.energy.p90 / 3600:.3g} Wh",
            "off by": "-" if figures.error_s is None else seconds(figures.error_s)}


def _window(figures: LearnedDurations) -> str:
    """Local times of the oldest and newest runs counted, with the zone once."""
    if figures.oldest is None or figures.newest is None:
        return "-"
    oldest, newest = figures.oldest.astimezone(), figures.newest.astimezone()
    return (f"{oldest.strftime(WINDOW_FORMAT)} – {newest.strftime(WINDOW_FORMAT)}"
            f" {newest.strftime('%Z')}")


def _p(spread: Spread | None, q: int) -> str:
    if spread is None:
        return "-"
    return seconds(spread.p50 if q == 50 else spread.p90)
