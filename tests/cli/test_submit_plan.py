"""Runs asked for from the command line are planned by the config's forecast when no daemon
is up; N runs asked for together are planned as one batch."""

from datetime import timedelta

from easyflow_cli.cli.submit import plan_manual_runs, queue_policy
from easyflow_cli.core.config import load_config
from easyflow_cli.core.model import Mode
from easyflow_cli.core.spec import parse_workflow_text
from easyflow_cli.core.timeutil import to_iso, utcnow

# Hours from the next one: one cheap hour alone (1), and a cheaper-on-the-whole block (5-8).
PRICES = {1: 0.01, 5: 0.05, 6: 0.05, 7: 0.05, 8: 0.05}


def test_one_run_takes_the_cheap_hour_and_a_batch_the_cheap_block(store, tmp_path):
    first = utcnow().replace(minute=0, second=0, microsecond=0) + timedelta(hours=1)
    lines = "".join(f"{to_iso(first + timedelta(hours=h))},"
                    f"{to_iso(first + timedelta(hours=h + 1))},{PRICES.get(h, 0.5)}\n"
                    for h in range(24))
    (tmp_path / "tariff.csv").write_text("start,end,value\n" + lines)
    (tmp_path / "easyflow.toml").write_text(
        '[costs]\ntariff = "tariff.csv"\ndefault_duration = "40m"\n'
        '[pools.eco]\noptimise = "cost"\nworkers = 1\n')
    config = load_config(tmp_path / "easyflow.toml", {})
    policy = queue_policy(store, config, daemon_up=False)
    spec = parse_workflow_text('name = "w"\n[[steps]]\nrun = ["true"]\n')
    [one] = plan_manual_runs(store, [spec], 1, policy, mode=Mode.ECO, deadline=None,
                             followed=False)
    assert one.not_before == first + timedelta(hours=1)
    batch = plan_manual_runs(store, [spec], 4, policy, mode=Mode.ECO, deadline=None,
                             followed=False)
    assert {run.not_before for run in batch} == {first + timedelta(hours=5)}
    assert batch[0].not_before_reason.startswith("cheapest window ")
