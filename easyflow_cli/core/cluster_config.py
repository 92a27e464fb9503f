"""The `[cluster]` table of `easyflow.toml`: the PostgreSQL database and the Redis broker that
run easyflow across machines, and how long a worker's silence or an unclaimed dispatch lasts.

`EASYFLOW_DATABASE_URL` and `EASYFLOW_BROKER_URL` override the file's URLs (and make a cluster
of a machine with no `[cluster]` table), so a password need not be written in a file. With
neither the table nor the variables, easyflow stays on its embedded SQLite database.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import SplitResult, urlsplit

from easyflow_cli.core.errors import SpecError
from easyflow_cli.core.toml_check import Checker, type_name

CLUSTER_KEYS = ("database_url", "broker_url", "lease", "dispatch_timeout")
DATABASE_ENV = "EASYFLOW_DATABASE_URL"
BROKER_ENV = "EASYFLOW_BROKER_URL"
DATABASE_SCHEMES = ("postgresql", "postgres")
BROKER_SCHEMES = ("redis", "rediss")
DEFAULT_LEASE_S = 30.0
DEFAULT_DISPATCH_TIMEOUT_S = 30.0
PATH = ("cluster",)


@dataclass(frozen=True)
class ClusterConfig:
    database_url: str
    broker_url: str | None = None  # the coordinator and the workers need one; the CLI does not
    lease: float = DEFAULT_LEASE_S  # a worker silent this long has lost its run
    dispatch_timeout: float = DEFAULT_DISPATCH_TIMEOUT_S  # unclaimed this long: back in line

    def __repr__(self) -> str:
        return (f"ClusterConfig(database_url={masked(self.database_url)!r}, broker_url="
                f"{masked(self.broker_url) if self.broker_url else None!r}, "
                f"lease={self.lease}, dispatch_timeout={self.dispatch_timeout})")


def build_cluster(check: Checker, table: object, env: Mapping[str, str]
                  ) -> ClusterConfig | None:
    """The `[cluster]` table (None when absent) with the environment's URLs over it; None when
    neither says anything: no cluster."""
    if table is None:
        table = {}
    elif not isinstance(table, dict):
        check.fail(PATH, f"must be a table, got {type_name(table)}")
        return None
    check.unknown_keys(table, CLUSTER_KEYS, PATH)
    database = _env_url(check, env, DATABASE_ENV, DATABASE_SCHEMES) or _file_url(
        check, table, "database_url", DATABASE_SCHEMES)
    broker = _env_url(check, env, BROKER_ENV, BROKER_SCHEMES) or _file_url(
        check, table, "broker_url", BROKER_SCHEMES)
    lease = check.duration(table, "lease", PATH) or DEFAULT_LEASE_S
    timeout = check.duration(table, "dispatch_timeout", PATH) or DEFAULT_DISPATCH_TIMEOUT_S
    if database is None:
        if table.get("database_url") or env.get(DATABASE_ENV):
            return None  # given, and refused above
        if table:
            check.fail(PATH + ("database_url",), f"is required (or set {DATABASE_ENV})")
        elif broker:
            check.errors.append(SpecError(
                f"a broker needs a database too: set {DATABASE_ENV}, or [cluster] database_url",
                file="environment", field=BROKER_ENV))
        return None
    return ClusterConfig(database, broker, lease, timeout)


def _file_url(check: Checker, table: dict, key: str, schemes: tuple[str, ...]) -> str | None:
    text = check.string(table, key, PATH)
    if not text:
        return None
    try:
        return check_url(text, schemes)
    except ValueError as exc:
        check.fail(PATH + (key,), str(exc))
        return None


def _env_url(check: Checker, env: Mapping[str, str], name: str,
             schemes: tuple[str, ...]) -> str | None:
    text = env.get(name)
    if not text:
        return None
    try:
        return check_url(text, schemes)
    except ValueError as exc:
        check.errors.append(SpecError(str(exc), file="environment", field=name))
        return None


def check_url(text: str, schemes: tuple[str, ...]) -> str:
    """The URL, if it is one of these schemes that parses; ValueError naming the problem
    (never the password)."""
    try:
        parts = urlsplit(text)
        parts.port  # noqa: B018  # parsed only when read: a bad port raises here
    except ValueError:
        raise ValueError(f"is not a URL: {masked(text)!r}") from None
    if parts.scheme not in schemes:
        wanted = " or ".join(f"{scheme}://" for scheme in schemes)
        raise ValueError(f"must start with {wanted}, got {masked(text)!r}")
    return text


def masked(url: str) -> str:
    """The URL with its password, if any, shown as ***: configs and errors get printed."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<unparsable URL>"
    if parts.password is None:
        return url
    return _with_netloc(parts, parts.netloc.replace(f":{parts.password}@", ":***@", 1))


def _with_netloc(parts: SplitResult, netloc: str) -> str:
    return parts._replace(netloc=netloc).geturl()
