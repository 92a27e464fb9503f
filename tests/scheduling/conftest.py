import pytest

from easyflow_cli.storage.store import Store


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request, home):
    """The schedules' rules run over either backend's store: the daemon's ScheduleBook will
    run over PostgreSQL in a cluster."""
    if request.param == "postgresql":
        url = request.getfixturevalue("database_url")  # skips without psycopg or a server
        from easyflow_cli.storage.pg_store import PgStore

        with PgStore(url) as pg_store:
            yield pg_store
        return
    with Store.open(home) as opened:
        yield opened
