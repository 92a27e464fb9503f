import tomllib
from datetime import timedelta

import pytest

from easyflow_cli.core.config import DEFAULTS_PATH, load_config
from easyflow_cli.core.errors import SpecErrors
from easyflow_cli.core.model import Mode
from tests.conftest import REPO


def test_repo_config_is_the_builtin_defaults():
    assert (REPO / "config" / "easyflow.toml").read_bytes() == DEFAULTS_PATH.read_bytes()


def test_defaults_match_the_seed(home):
    config = load_config()
    assert config.source == "built-in defaults"
    assert [config.pool(m).workers for m in Mode] == [5, 3, 2]
    assert config.pool(Mode.REAL_TIME).timeout == 60
    assert config.pool(Mode.ECO).timeout == 300
    assert config.pool(Mode.ECO).nice == 19 and config.pool(Mode.ECO).batch_size == 10
    assert config.promote_within == timedelta(hours=1)
    assert config.off_peak is not None


def test_lookup_order(home, tmp_path, monkeypatch):
    home.mkdir(parents=True)
    (home / "easyflow.toml").write_text('[pools.eco]\nworkers = 4\n')
    assert load_config().pool(Mode.ECO).workers == 4
    other = tmp_path / "other.toml"
    other.write_text('[pools.eco]\nworkers = 6\noff_peak = ""\n')
    monkeypatch.setenv("EASYFLOW_CONFIG", str(other))
    config = load_config()
    assert config.pool(Mode.ECO).workers == 6 and config.off_peak is None
    explicit = tmp_path / "explicit.toml"
    explicit.write_text('[deadlines]\npromote_within = "10m"\n')
    config = load_config(explicit)
    assert config.promote_within == timedelta(minutes=10)
    assert config.pool(Mode.ECO).workers == 2  # defaults fill what the file leaves out


def test_seed_environment_overrides(home, monkeypatch):
    monkeypatch.setenv("REALTIME_MAX_WORKERS", "8")
    monkeypatch.setenv("ECO_MAX_WORKERS", "1")
    config = load_config()
    assert config.pool(Mode.REAL_TIME).workers == 8 and config.pool(Mode.ECO).workers == 1
    monkeypatch.setenv("ECO_MAX_WORKERS", "many")
    with pytest.raises(SpecErrors, match="ECO_MAX_WORKERS: must be a whole number"):
        load_config()


@pytest.mark.parametrize("text, message", [
    ('[pools.eco]\nworkrs = 2\n', "2: pools.eco.workrs: unknown key (did you mean 'workers'?)"),
    ('[pools.turbo]\nworkers = 2\n', "pools.turbo: unknown key"),
    ('[pools.eco]\nworkers = 0\n', "2: pools.eco.workers: must be >= 1, got 0"),
    ('[pools.eco]\nnice = 40\n', "pools.eco.nice: must be between 0 and 19"),
    ('[pools.eco]\noff_peak = "night"\n', "pools.eco.off_peak: bad off-peak window"),
    ('[deadlines]\npromote_within = "1 hour"\n', "deadlines.promote_within: bad duration"),
    ('[pools.eco]\noptimise = "money"\n', "2: pools.eco.optimise: must be one of"),
    ('[pools.eco]\nmax_delay = "soon"\n', "pools.eco.max_delay: bad duration"),
    ('[pools.balanced]\nmax_delay = "1h"\n', "pools.balanced.max_delay: unknown key"),
    ('[pools.balanced]\nstart_within = 5\n', "pools.balanced.start_within:"),
    ('[carbon]\nsource = "x"\n', "carbon.source: unknown key"),
    ('[pools.eco\n', "TOML syntax error"),
    ('\n[history]\nkeep = "ninety days"\n', '3: history.keep: bad duration'),
    ('[history]\nkeep = 90\n', "2: history.keep: "),
    ('[history]\nkeeep = "7d"\n', "2: history.keeep: unknown key (did you mean 'keep'?)"),
])
def test_bad_config_is_reported_with_file_and_line(tmp_path, home, text, message):
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(SpecErrors) as caught:
        load_config(path)
    assert str(caught.value).startswith(str(path))
    assert message in str(caught.value)


def test_defaults_file_has_only_known_keys():
    data = tomllib.loads(DEFAULTS_PATH.read_text())
    assert set(data) == {"pools", "deadlines", "daemon", "logs", "costs", "metrics", "notify",
                         "history"}


@pytest.mark.parametrize("text, keep_s", [
    ("", 90 * 86400.0), ('[history]\nkeep = "7d"\n', 7 * 86400.0),
    ('[history]\nkeep = "forever"\n', None),
])
def test_history_keep(tmp_path, home, text, keep_s):
    path = tmp_path / "easyflow.toml"
    path.write_text(text)
    assert load_config(path).keep_history_s == keep_s


def test_cost_intelligence_keys(home, tmp_path, monkeypatch):
    from easyflow_cli.core.config import Optimise

    config = load_config()
    eco = config.pool(Mode.ECO)
    assert eco.optimise is Optimise.OFF_PEAK and eco.max_delay == 86400
    assert config.pool(Mode.REAL_TIME).start_within == 1
    assert config.pool(Mode.BALANCED).start_within == 60
    assert config.costs.tariff is None and config.carbon.forecast is None
    path = tmp_path / "conf" / "easyflow.toml"
    path.parent.mkdir()
    path.write_text('[pools.eco]\noptimise = "carbon"\nmax_delay = "12h"\n'
                    '[costs]\ntariff = "prices/agile.json"\n'
                    '[carbon]\nforecast = "/var/lib/easyflow/carbon.json"\n')
    config = load_config(path)
    assert config.pool(Mode.ECO).optimise is Optimise.CARBON
    assert config.pool(Mode.ECO).max_delay == 12 * 3600
    assert config.costs.tariff == path.parent / "prices" / "agile.json"
    assert str(config.carbon.forecast) == "/var/lib/easyflow/carbon.json"
