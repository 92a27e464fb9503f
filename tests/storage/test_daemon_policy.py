from datetime import UTC, datetime, timedelta

from easyflow_cli.core.offpeak import parse_window
from easyflow_cli.core.planning import QueuePolicy
from easyflow_cli.storage.daemon_policy import publish_policy, published_policy
from easyflow_cli.storage.store import Store

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)


def test_nothing_is_published_until_a_daemon_publishes(store):
    assert published_policy(store) is None


def test_the_last_policy_published_is_read_back_as_it_was(store, home):
    publish_policy(store, QueuePolicy(timedelta(hours=1), parse_window("22:00-06:00")), NOW)
    latest = QueuePolicy(timedelta(minutes=90, seconds=30), parse_window("1:05-2:00"))
    publish_policy(store, latest, NOW + timedelta(hours=1))
    with Store.open(home) as client:
        assert published_policy(client) == latest
    assert store.conn.execute("SELECT count(*) FROM daemon_policy").fetchone()[0] == 1


def test_no_window_is_published_as_none(store):
    publish_policy(store, QueuePolicy(timedelta(minutes=5), None), NOW)
    assert published_policy(store) == QueuePolicy(timedelta(minutes=5), None)


def test_the_eco_planning_is_published_and_its_forecast_read_by_the_client(store, tmp_path):
    from easyflow_cli.core.config import Optimise, load_config

    (tmp_path / "carbon.csv").write_text(
        "start,end,value\n2026-11-25T12:00:00Z,2026-11-25T13:00:00Z,180\n")
    policy = QueuePolicy(optimise=Optimise.CARBON, max_delay=timedelta(hours=3),
                         series_path=tmp_path / "carbon.csv")
    publish_policy(store, policy, NOW)
    assert published_policy(store) == policy
    client = published_policy(store, load_config(None, {"EASYFLOW_HOME": str(tmp_path)}))
    assert client.series.forecast.value_at(NOW) == 180
    assert (client.optimise, client.max_delay) == (Optimise.CARBON, timedelta(hours=3))
