"""The test servers of `tests/servers.py`: what the cluster tests stand on works as they
expect (each test an empty schema of its own; a Redis that keeps nothing on disk)."""

import pytest


def test_each_test_gets_an_empty_schema_of_its_own(database_url, postgres_server):
    psycopg = pytest.importorskip("psycopg")
    with psycopg.connect(database_url, autocommit=True) as conn:
        schema = conn.execute("SELECT current_schema()").fetchone()[0]
        assert database_url.endswith(f"search_path%3D{schema}")
        conn.execute("CREATE TABLE mine (x integer)")
        assert conn.execute("SELECT count(*) FROM pg_tables WHERE schemaname = %s",
                            (schema,)).fetchone()[0] == 1
    with psycopg.connect(postgres_server.url(), autocommit=True) as admin:
        assert admin.execute("SELECT current_setting('fsync'), inet_server_addr()::text"
                             ).fetchone() == ("off", "127.0.0.1/32")


def test_redis_serves_a_queue_and_keeps_nothing_on_disk(redis_server):
    redis = pytest.importorskip("redis", reason="the [cluster] extra is not installed")
    client = redis.Redis.from_url(redis_server.url())
    client.rpush("q", "a", "b")
    assert client.blpop(["q"], timeout=5) == (b"q", b"a")
    assert client.config_get("save") == {"save": ""}
    assert client.config_get("appendonly") == {"appendonly": "no"}
    client.close()
