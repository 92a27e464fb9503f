"""The one median and nearest-rank percentile, against `statistics` and the definition."""

import json
import statistics
import subprocess
import sys

import pytest
from hypothesis import given
from hypothesis import strategies as st

from easyflow_cli.core.stats import median, nearest_rank, percentile

finite = st.floats(min_value=-1e9, max_value=1e9, allow_nan=False)
samples = st.lists(st.one_of(finite, st.integers(-10**6, 10**6)), min_size=1, max_size=40)


@given(samples)
def test_median_is_statistics_median(values):
    assert median(values) == statistics.median(values)
    assert type(median(values)) is type(statistics.median(values))


def test_no_values_have_no_median_or_percentile():
    for statistic in (median, lambda values: percentile(values, 50),
                      lambda values: nearest_rank(len(values), 50)):
        with pytest.raises(ValueError):
            statistic([])


def definition(ordered: list[float], q: int) -> float:
    """The smallest value with at least q% of the values at or below it, found by counting."""
    return next(v for v in ordered if 100 * sum(x <= v for x in ordered) >= q * len(ordered))


@given(samples, st.integers(min_value=0, max_value=100))
def test_percentile_is_the_nearest_rank_by_definition(values, q):
    ordered = sorted(values)
    assert percentile(ordered, q) == definition(ordered, q)


def test_percentile_edges():
    assert percentile([5], 99) == 5
    assert percentile([5, 6], 0) == 5
    values = list(range(1, 101))
    assert [percentile(values, q) for q in (1, 7, 50, 95, 99, 100)] == [1, 7, 50, 95, 99, 100]
    # A rank that lands on a whole number stays there (7 / 100 * 100 would give 8).
    assert nearest_rank(100, 7) == 7


def test_importing_it_leaves_statistics_unloaded():
    # It is on the path of `run --now --no-wait`, which must not pay for `statistics`.
    script = ("import sys, json\nimport easyflow_cli.core.stats\n"
              "print(json.dumps(sorted(sys.modules)))")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          check=True)
    assert "statistics" not in json.loads(done.stdout)
