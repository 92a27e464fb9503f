"""The figures the bench prints: a list of samples as its median and percentiles."""

from __future__ import annotations

from typing import Any

from easyflow_cli.core.stats import median, percentile


def distribution(samples: list[float], places: int = 3) -> dict[str, Any]:
    """Median and nearest-rank percentiles of a list of samples, with their count."""
    ordered = sorted(samples)
    if not ordered:
        return {"samples": 0}
    return {"samples": len(ordered), "median": round(median(ordered), places),
            **{f"p{q}": round(percentile(ordered, q), places) for q in (50, 95, 99)},
            "min": round(ordered[0], places), "max": round(ordered[-1], places)}
