from datetime import UTC, datetime, timedelta

from easyflow_cli.storage.daemon_tokens import KEPT, known_tokens, newest_token, record_token
from easyflow_cli.storage.store import Store

NOW = datetime(2026, 12, 2, 7, 0, tzinfo=UTC)


def test_no_token_until_one_is_recorded(store):
    assert known_tokens(store) == [] and newest_token(store) is None


def test_tokens_are_read_back_newest_first_by_another_connection(store, home):
    record_token(store, "a" * 32, NOW)
    record_token(store, "b" * 32, NOW + timedelta(seconds=1))
    with Store.open(home) as client:
        assert known_tokens(client) == ["b" * 32, "a" * 32]
        assert newest_token(client) == "b" * 32


def test_only_the_newest_tokens_are_kept(store):
    for number in range(KEPT + 5):
        record_token(store, f"{number:032x}", NOW + timedelta(seconds=number))
    tokens = known_tokens(store)
    assert len(tokens) == KEPT
    assert tokens[0] == f"{KEPT + 4:032x}" and tokens[-1] == f"{5:032x}"
