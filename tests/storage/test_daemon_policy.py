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
