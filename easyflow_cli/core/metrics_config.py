"""The `[metrics]` table of `easyflow.toml`: where the daemon serves and writes its metrics.

`listen = "127.0.0.1:9464"` serves `/metrics` over HTTP; an address other than loopback is
refused unless `allow_remote = true` says so, since the metrics name every workflow and what it
costs. `textfile = "/var/lib/node_exporter/textfile/easyflow.prom"` writes them for
node_exporter's textfile collector, which reads only files ending in `.prom`.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from pathlib import Path

from easyflow_cli.core.toml_check import Checker, type_name

METRICS_KEYS = ("listen", "allow_remote", "textfile")
LOOPBACK_NAMES = ("localhost",)


@dataclass(frozen=True)
class ListenAddress:
    host: str
    port: int

    def __str__(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


@dataclass(frozen=True)
class MetricsConfig:
    listen: ListenAddress | None = None
    allow_remote: bool = False
    textfile: Path | None = None


def build_metrics(check: Checker, table: dict) -> MetricsConfig:
    path = ("metrics",)
    if not isinstance(table, dict):
        check.fail(path, f"must be a table, got {type_name(table)}")
        return MetricsConfig()
    check.unknown_keys(table, METRICS_KEYS, path)
    allow_remote = _boolean(check, table, "allow_remote", path)
    listen = _listen(check, table, path, allow_remote)
    return MetricsConfig(listen, allow_remote, _textfile(check, table, path))


def _boolean(check: Checker, table: dict, key: str, path: tuple) -> bool:
    value = table.get(key, False)
    if not isinstance(value, bool):
        check.fail(path + (key,), f"must be true or false, got {type_name(value)}")
        return False
    return value


def _listen(check: Checker, table: dict, path: tuple,
            allow_remote: bool) -> ListenAddress | None:
    text = check.string(table, "listen", path)
    if not text:
        return None  # absent or "": metrics are not served
    try:
        address = parse_listen(text)
    except ValueError as exc:
        check.fail(path + ("listen",), str(exc))
        return None
    if not allow_remote and not is_loopback(address.host):
        check.fail(path + ("listen",), f"{address.host} is not a loopback address: set "
                   "allow_remote = true to serve metrics to other machines")
        return None
    return address


def parse_listen(text: str) -> ListenAddress:
    """`HOST:PORT`, `[IPV6]:PORT`: the address `/metrics` is served on."""
    host, colon, port_text = text.rpartition(":")
    if not colon or not host:
        raise ValueError(f"must be HOST:PORT like \"127.0.0.1:9464\", got {text!r}")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    elif ":" in host:
        raise ValueError(f"an IPv6 address goes in brackets, like \"[::1]:9464\", got {text!r}")
    if not port_text.isdigit() or not 1 <= int(port_text) <= 65535:
        raise ValueError(f"the port must be a number from 1 to 65535, got {port_text!r}")
    return ListenAddress(host, int(port_text))


def is_loopback(host: str) -> bool:
    if host in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # another host name: it may resolve to anything


def _textfile(check: Checker, table: dict, path: tuple) -> Path | None:
    text = check.string(table, "textfile", path)
    if not text:
        return None
    if not text.endswith(".prom"):
        check.fail(path + ("textfile",), "must end in .prom: node_exporter's textfile "
                   f"collector reads only those, got {text!r}")
        return None
    if not Path(text).is_absolute():
        check.fail(path + ("textfile",), f"must be an absolute path, got {text!r}")
        return None
    return Path(text)
