"""`[metrics]`: off by default, loopback unless the config says otherwise, a .prom textfile."""

import re
from pathlib import Path

import pytest

from easyflow_cli.core.config import load_config
from easyflow_cli.core.errors import SpecErrors
from easyflow_cli.core.metrics_config import ListenAddress, MetricsConfig, parse_listen


def config_of(tmp_path: Path, text: str):
    path = tmp_path / "easyflow.toml"
    path.write_text(text)
    return load_config(path)


def test_metrics_are_off_by_default(home):
    assert load_config().metrics == MetricsConfig()


@pytest.mark.parametrize("text, address", [
    ("127.0.0.1:9464", ListenAddress("127.0.0.1", 9464)),
    ("localhost:9464", ListenAddress("localhost", 9464)),
    ("[::1]:9464", ListenAddress("::1", 9464)),
    ("127.0.0.53:1", ListenAddress("127.0.0.53", 1)),
])
def test_loopback_addresses_are_served_without_more_ado(tmp_path, home, text, address):
    metrics = config_of(tmp_path, f'[metrics]\nlisten = "{text}"\n').metrics
    assert metrics.listen == address and str(parse_listen(text)) == text


def test_another_address_needs_allow_remote(tmp_path, home):
    with pytest.raises(SpecErrors, match=r"2: metrics.listen: 0.0.0.0 is not a loopback "
                                         r"address: set allow_remote = true"):
        config_of(tmp_path, '[metrics]\nlisten = "0.0.0.0:9464"\n')
    metrics = config_of(tmp_path, '[metrics]\nlisten = "0.0.0.0:9464"\nallow_remote = true\n'
                        ).metrics
    assert metrics.listen == ListenAddress("0.0.0.0", 9464) and metrics.allow_remote


@pytest.mark.parametrize("text, message", [
    ('listen = "9464"', "metrics.listen: must be HOST:PORT"),
    ('listen = "127.0.0.1:http"', "metrics.listen: the port must be a number from 1 to 65535"),
    ('listen = "127.0.0.1:0"', "the port must be a number from 1 to 65535, got '0'"),
    ('listen = "::1:9464"', "metrics.listen: an IPv6 address goes in brackets"),
    ('listen = 9464', "metrics.listen: must be a string, got an integer"),
    ('allow_remote = "yes"', "metrics.allow_remote: must be true or false, got a string"),
    ('textfile = "/tmp/easyflow.txt"', "metrics.textfile: must end in .prom"),
    ('textfile = "easyflow.prom"', "metrics.textfile: must be an absolute path"),
    ('listne = "127.0.0.1:9464"', "metrics.listne: unknown key (did you mean 'listen'?)"),
])
def test_bad_metrics_settings_name_their_key(tmp_path, home, text, message):
    with pytest.raises(SpecErrors, match=re.escape(message)):
        config_of(tmp_path, f"[metrics]\n{text}\n")


def test_metrics_must_be_a_table(tmp_path, home):
    with pytest.raises(SpecErrors, match="metrics: must be a table, got an integer"):
        config_of(tmp_path, "metrics = 3\n")


def test_a_textfile_for_node_exporter(tmp_path, home):
    metrics = config_of(tmp_path, '[metrics]\ntextfile = "/var/lib/node_exporter/e.prom"\n'
                        ).metrics
    assert metrics.textfile == Path("/var/lib/node_exporter/e.prom") and metrics.listen is None
