"""The median of each figure over several `easyflow bench --json` documents (a noisy box needs
repeats): `python tests/benchmarks/median_of_benches.py run1.json run2.json run3.json`."""

from __future__ import annotations

import json
import statistics
import sys
from typing import Any


def median_document(documents: list[Any]) -> Any:
    """The same shape as each document; every number replaced by the median of its values."""
    first = documents[0]
    if isinstance(first, dict):
        return {key: median_document([d[key] for d in documents]) for key in first}
    if isinstance(first, list):
        if all(isinstance(d, list) and len(d) == len(first) for d in documents):
            return [median_document(list(items)) for items in zip(*documents, strict=True)]
        return first
    if isinstance(first, bool) or not isinstance(first, int | float):
        return first
    return round(statistics.median(documents), 4)


def main() -> None:
    documents = [json.load(open(path)) for path in sys.argv[1:]]  # noqa: SIM115
    merged = median_document(documents)
    merged["repeats"] = len(documents)
    if "targets" in merged:
        from easyflow_cli.tools.bench import check_targets

        merged["targets"] = check_targets(merged)
    print(json.dumps(merged, indent=2))


if __name__ == "__main__":
    main()
