"""Which store the commands open: the cluster's, when the configuration names one."""

import pytest

from easyflow_cli.cli.common import configured_cluster, open_store
from easyflow_cli.core.errors import SpecErrors
from easyflow_cli.storage.store import Store

URL = "postgresql://easyflow@db.internal/easyflow"


def test_one_box_opens_the_sqlite_store(home):
    with open_store() as store:
        assert isinstance(store, Store) and store.cluster is None
    assert configured_cluster() is None


def test_a_cluster_table_or_the_environment_names_the_database(home, monkeypatch):
    home.mkdir(parents=True, exist_ok=True)
    (home / "easyflow.toml").write_text(f'[cluster]\ndatabase_url = "{URL}"\nlease = "10s"\n')
    cluster = configured_cluster()
    assert cluster is not None and (cluster.database_url, cluster.lease) == (URL, 10.0)
    monkeypatch.setenv("EASYFLOW_DATABASE_URL", URL.replace("db.internal", "other"))
    cluster = configured_cluster()
    assert cluster is not None and cluster.database_url.endswith("@other/easyflow")


def test_a_config_that_names_no_cluster_is_not_parsed(home):
    home.mkdir(parents=True, exist_ok=True)
    (home / "easyflow.toml").write_text("[pools.eco]\nmax_workers = 'many'\n")
    assert configured_cluster() is None  # the commands that read the config refuse it
    (home / "easyflow.toml").write_text(f'[cluster]\ndatabase_url = "{URL}"\nnope = 1\n')
    with pytest.raises(SpecErrors):
        configured_cluster()
