"""`[cluster]` in easyflow.toml and its environment variables: parsed, checked, located."""


import pytest

from easyflow_cli.core.cluster_config import ClusterConfig
from easyflow_cli.core.config import load_config
from easyflow_cli.core.errors import SpecErrors

DB = "postgresql://easyflow@db.internal/easyflow"
BROKER = "redis://queue.internal:6379/0"


def config(tmp_path, text: str, env: dict[str, str] | None = None):
    path = tmp_path / "easyflow.toml"
    path.write_text(text)
    return load_config(path, environ=env or {})


def test_no_cluster_by_default(home):
    assert load_config(environ={}).cluster is None


def test_the_issue_example_is_read_as_written(tmp_path, home):
    text = (f'[cluster]\ndatabase_url = "{DB}"\nbroker_url = "{BROKER}"\nlease = "45s"\n'
            'dispatch_timeout = "2m"\n')
    assert config(tmp_path, text).cluster == ClusterConfig(DB, BROKER, 45.0, 120.0)


def test_leases_and_timeouts_default_to_thirty_seconds(tmp_path, home):
    assert config(tmp_path, f'[cluster]\ndatabase_url = "{DB}"\n').cluster == ClusterConfig(
        DB, None, 30.0, 30.0)


def test_the_environment_overrides_the_file_or_stands_alone(tmp_path, home):
    env = {"EASYFLOW_DATABASE_URL": "postgres://other/db", "EASYFLOW_BROKER_URL": "rediss://q"}
    text = f'[cluster]\ndatabase_url = "{DB}"\nbroker_url = "{BROKER}"\nlease = "1m"\n'
    assert config(tmp_path, text, env).cluster == ClusterConfig(
        "postgres://other/db", "rediss://q", 60.0, 30.0)
    assert load_config(environ=env).cluster == ClusterConfig("postgres://other/db",
                                                             "rediss://q")


@pytest.mark.parametrize(("text", "message"), [
    ('[cluster]\nbroker_url = "redis://q"\n',
     "easyflow.toml:1: cluster.database_url: is required (or set EASYFLOW_DATABASE_URL)"),
    ('[cluster]\ndatabase_url = "mysql://db/x"\n',
     "easyflow.toml:2: cluster.database_url: must start with postgresql:// or postgres://,"
     " got 'mysql://db/x'"),
    (f'[cluster]\ndatabase_url = "{DB}"\nbroker_url = "amqp://q"\n',
     "easyflow.toml:3: cluster.broker_url: must start with redis:// or rediss://,"
     " got 'amqp://q'"),
    (f'[cluster]\ndatabase_url = "{DB}"\nlease = "soon"\n',
     "easyflow.toml:3: cluster.lease: bad duration 'soon': write it like '30s', '5m', '2h',"
     " '1d' or '1h30m'"),
    (f'[cluster]\ndatabase_url = "{DB}"\ndispatch_timeout = 30\n',
     "easyflow.toml:3: cluster.dispatch_timeout: must be a string, got an integer"),
    (f'[cluster]\ndatabase_url = "{DB}"\nleese = "30s"\n',
     "easyflow.toml:3: cluster.leese: unknown key (did you mean 'lease'?)"),
    ('[cluster]\ndatabase_url = "postgresql://u:s3cret@db:port/x"\n',
     "easyflow.toml:2: cluster.database_url: is not a URL: 'postgresql://u:***@db:port/x'"),
    ("cluster = 3\n", "easyflow.toml:1: cluster: must be a table, got an integer"),
])
def test_bad_cluster_settings_name_their_file_line_and_key(tmp_path, home, text, message):
    with pytest.raises(SpecErrors) as caught:
        config(tmp_path, text)
    [error] = caught.value.errors
    assert str(error).endswith(message)


def test_bad_environment_urls_are_named_and_no_password_is_shown(home):
    env = {"EASYFLOW_DATABASE_URL": "mysql://root:s3cret@db/x"}
    with pytest.raises(SpecErrors) as caught:
        load_config(environ=env)
    assert str(caught.value) == ("environment: EASYFLOW_DATABASE_URL: must start with "
                                 "postgresql:// or postgres://, got 'mysql://root:***@db/x'")
    with pytest.raises(SpecErrors, match="environment: EASYFLOW_BROKER_URL: a broker needs a "
                       "database too: set EASYFLOW_DATABASE_URL, or"):
        load_config(environ={"EASYFLOW_BROKER_URL": BROKER})


def test_a_printed_config_never_shows_the_password():
    cluster = ClusterConfig("postgresql://easyflow:s3cret@db/easyflow", "redis://:pw@q:6379/0")
    assert "s3cret" not in repr(cluster) and ":pw@" not in repr(cluster)
    assert "postgresql://easyflow:***@db/easyflow" in repr(cluster)
