"""The daemon's metrics exporter: prometheus-client's HTTP server and the textfile writer, each
in threads of their own, started and stopped with the daemon."""

from __future__ import annotations

import logging
import socket
import time
import urllib.request
from pathlib import Path

import pytest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.registry import Collector

from easyflow_cli.core.metrics_config import ListenAddress, MetricsConfig
from easyflow_cli.reporting.metrics import registry_of
from easyflow_cli.runtime.daemon.metrics_exporter import MetricsExporter


class Counting(Collector):
    """A gauge that says how often it was collected."""

    def __init__(self) -> None:
        self.scrapes = 0

    def collect(self):
        self.scrapes += 1
        yield GaugeMetricFamily("scrapes", "times collected", value=self.scrapes)


def wait_for(predicate, message: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {message}"
        time.sleep(0.01)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def value_in(text: str) -> float:
    [family] = text_string_to_metric_families(text)
    return family.samples[0].value


def test_metrics_are_served_over_http_until_stopped():
    port = free_port()
    exporter = MetricsExporter(MetricsConfig(listen=ListenAddress("127.0.0.1", port)),
                               registry_of(Counting()))
    exporter.start()
    url = f"http://127.0.0.1:{port}/metrics"
    try:
        for expected in (1, 2):
            with urllib.request.urlopen(url, timeout=5) as answer:
                assert value_in(answer.read().decode()) == expected
    finally:
        exporter.stop()
    with pytest.raises(OSError):
        urllib.request.urlopen(url, timeout=5)


def test_an_address_in_use_is_logged_and_the_daemon_goes_on(caplog):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        exporter = MetricsExporter(MetricsConfig(listen=ListenAddress("127.0.0.1", port)),
                                   registry_of(Counting()))
        with caplog.at_level(logging.ERROR, logger="easyflow.daemon"):
            exporter.start()
        exporter.stop()
    assert f"metrics: cannot listen on 127.0.0.1:{port}" in caplog.text


def test_the_textfile_is_written_at_start_when_poked_and_at_stop(tmp_path: Path):
    path = tmp_path / "easyflow.prom"
    exporter = MetricsExporter(MetricsConfig(textfile=path), registry_of(Counting()), every=0)
    exporter.start()
    wait_for(lambda: path.exists() and value_in(path.read_text()) == 1, message="the first file")
    exporter.quiet()
    wait_for(lambda: value_in(path.read_text()) == 2, message="the file after a poke")
    exporter.stop()
    assert value_in(path.read_text()) == 3
    assert [p.name for p in tmp_path.iterdir()] == ["easyflow.prom"]  # no temporary left


def test_pokes_within_the_interval_make_one_write(tmp_path: Path):
    path = tmp_path / "easyflow.prom"
    collector = Counting()
    exporter = MetricsExporter(MetricsConfig(textfile=path), registry_of(collector), every=3600)
    exporter.start()
    wait_for(lambda: path.exists(), message="the first file")
    for _ in range(5):
        exporter.quiet()
    exporter.stop()  # not held up by the interval
    assert collector.scrapes == 2  # the first file, and the last at stop


def test_an_exporter_never_started_leaves_the_textfile_alone(tmp_path: Path):
    # The daemon stops it also when it could not start (another daemon holds the lock): the
    # file is that other daemon's.
    path = tmp_path / "easyflow.prom"
    path.write_text("theirs\n")
    MetricsExporter(MetricsConfig(textfile=path), registry_of(Counting())).stop()
    assert path.read_text() == "theirs\n"


def test_a_textfile_that_cannot_be_written_is_logged(tmp_path: Path, caplog):
    path = tmp_path / "missing" / "easyflow.prom"
    exporter = MetricsExporter(MetricsConfig(textfile=path), registry_of(Counting()), every=0)
    with caplog.at_level(logging.WARNING, logger="easyflow.daemon"):
        exporter.start()
        exporter.stop()
    assert f"metrics: cannot write {path}" in caplog.text
