import math
import random

import pytest

from easyflow_cli.core.sketch import (
    RELATIVE_ERROR,
    SMALLEST,
    bucket_of,
    count_at_most,
    merge,
    quantile,
    sketch_of,
    surely_in,
    value_of,
)
from easyflow_cli.core.stats import percentile


@pytest.mark.parametrize("value", [0.0, 0.0009, SMALLEST, 0.0123, 1.0, 59.9, 3600.0, 86400 * 30])
def test_a_value_is_within_the_stated_error_of_its_bucket(value):
    assert abs(value_of(bucket_of(value)) - value) <= max(RELATIVE_ERROR * value, SMALLEST)


def test_values_surely_in_a_bucket_are_of_it_and_its_edges_are_not_surely_in():
    for bucket in [0, 1, 2, 57, 300, 560]:
        low, high = surely_in(bucket)
        inside = [math.nextafter(low, math.inf), math.nextafter(high, -math.inf)]
        if bucket:
            inside.append(math.sqrt(low * high))
        assert {bucket_of(value) for value in inside} == {bucket}
        edge = SMALLEST * 1.04 ** bucket
        assert not low < edge < high


def test_percentiles_of_merged_sketches_are_within_the_error_of_the_exact_ones():
    rng = random.Random(3)
    days = [[rng.lognormvariate(1, 2) for _ in range(rng.randrange(1, 400))] for _ in range(9)]
    merged: dict[int, int] = {}
    for values in days:
        merge(merged, sketch_of(values))
    everything = sorted(v for values in days for v in values)
    assert sum(merged.values()) == len(everything)
    for q in (1, 50, 95, 99, 100):
        exact = percentile(everything, q)
        assert abs(quantile(merged, q) - exact) <= max(RELATIVE_ERROR * exact, SMALLEST)


def test_an_empty_sketch_has_no_percentile():
    assert quantile({}, 50) is None


def test_count_at_most_reads_each_value_as_its_bucket():
    sketch = sketch_of([0.0, 0.5, 1.0, 1.0, 5.0, 3600.0])
    assert count_at_most(sketch, 0.0) == 1
    assert count_at_most(sketch, 1.0 * (1 + RELATIVE_ERROR)) == 4
    assert count_at_most(sketch, 10.0) == 5 and count_at_most(sketch, 1e9) == 6
