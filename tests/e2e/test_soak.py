"""A small kill -9 soak (tests/e2e/soak.py has the full one, run by hand)."""

import pytest

pytest.register_assert_rewrite("tests.daemon_harness")
from tests.e2e.soak import soak  # noqa: E402

pytestmark = pytest.mark.e2e


def test_a_small_kill_9_soak_loses_nothing_and_leaves_nothing_behind(tmp_path):
    figures = soak(tmp_path, daemon_kills=3, worker_kills=2, runs=40, seed=11)
    print(figures.line())
    assert figures.daemon_kills == 3 and figures.worker_kills == 2
    assert figures.clean, f"{figures.line()}\n{figures.details}"
    assert figures.rows >= figures.submitted > 0
