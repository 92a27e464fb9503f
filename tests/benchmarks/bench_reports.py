"""Only the report part of `easyflow bench`, over a throwaway history of N runs (default
1,000,000): `python tests/benchmarks/bench_reports.py [RUNS] [SAMPLES]` prints JSON, each
figure the median of SAMPLES (default 3) whole `easyflow report ... --json` processes."""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

from easyflow_cli.tools.bench import load_average
from easyflow_cli.tools.bench_reports import reports_at_scale


def main() -> None:
    runs = int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000
    samples = int(sys.argv[2]) if len(sys.argv) > 2 else 3
    before = load_average()
    with tempfile.TemporaryDirectory(prefix="easyflow-bench-reports-") as root:
        figures = reports_at_scale(Path(root), runs, samples)
    print(json.dumps({**figures, "samples": samples, "load_average_before": before,
                      "load_average_after": load_average()}, indent=2))


if __name__ == "__main__":
    main()
