from easyflow_cli.core.config import load_config
from easyflow_cli.core.model import Mode
from easyflow_cli.core.objectives import Objectives


def test_objectives_come_from_the_pools(home, tmp_path):
    config_file = tmp_path / "easyflow.toml"
    config_file.write_text('[pools.balanced]\nstart_within = "5m"\n[pools.eco]\nmax_delay = "6h"\n')
    objectives = Objectives.from_config(load_config(config_file))
    assert objectives.start_within == {Mode.REAL_TIME: 1.0, Mode.BALANCED: 300.0}
    assert objectives.max_delay == 6 * 3600.0
    assert objectives.describe(Mode.BALANCED) == "start within 5m"
    assert objectives.describe(Mode.ECO) == (
        "finish by the deadline; without one, start within 6h")


def test_a_mode_without_a_start_objective_is_not_measured():
    objectives = Objectives({Mode.REAL_TIME: 1.0, Mode.BALANCED: None}, 60.0)
    assert objectives.measured(Mode.ECO) and objectives.measured(Mode.REAL_TIME)
    assert not objectives.measured(Mode.BALANCED)
    assert objectives.describe(Mode.BALANCED) == "none"
