"""Learned durations follow a job whose duration doubles half-way within a few runs, where the
plain median of the last twenty took over ten, and cost little accuracy before the change."""

from easyflow_cli.tools.learning_drift import BEFORE, drift_figures, durations, main


def test_learned_durations_relearn_a_changed_job_within_a_few_runs():
    learned, plain = drift_figures(seeds=5)
    assert learned.runs_to_relearn <= 5 < 10 <= plain.runs_to_relearn
    assert learned.error_switch_s < plain.error_switch_s / 2
    assert learned.error_after_s < plain.error_after_s
    assert learned.error_before_s < 1.25 * plain.error_before_s
    assert learned.p90_covered_after > 2 * plain.p90_covered_after


def test_the_history_doubles_half_way(capsys):
    history = durations(seed=3)
    assert 50 < sum(history[:BEFORE]) / BEFORE < 70 and 110 < sum(history[BEFORE:]) / BEFORE < 130
    main(["--json"])
    assert '"runs_to_relearn"' in capsys.readouterr().out
