"""The daemon's metrics, off its loop: `/metrics` served by prometheus-client's own HTTP server
in threads of its own, and the node_exporter textfile written by a thread of its own.

A scrape reads the database on a connection of its own (reporting/metrics.py), so it never
waits on, or holds up, a dispatch. The textfile is rewritten when the loop has been quiet long
enough to checkpoint (`quiet`), at most every `TEXTFILE_EVERY_S`, so a burst of runs costs one
write; and once more at shutdown, saying the daemon is down.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from wsgiref.simple_server import WSGIServer

from prometheus_client import start_http_server, write_to_textfile
from prometheus_client.registry import CollectorRegistry

from easyflow_cli.core.metrics_config import MetricsConfig

log = logging.getLogger("easyflow.daemon")

# Node exporter reads the file at each of its own scrapes (typically every 15 to 60 s).
TEXTFILE_EVERY_S = 15.0


class MetricsExporter:
    def __init__(self, config: MetricsConfig, registry: CollectorRegistry,
                 every: float = TEXTFILE_EVERY_S) -> None:
        self.config = config
        self.registry = registry
        self.server: WSGIServer | None = None
        self.started = False
        self.writer: TextfileWriter | None = None
        if config.textfile is not None:
            self.writer = TextfileWriter(self._write_textfile, every)

    def start(self) -> None:
        self.started = True
        listen = self.config.listen
        if listen is not None:
            try:
                self.server, _ = start_http_server(listen.port, listen.host, self.registry)
            except OSError as exc:
                log.error("metrics: cannot listen on %s (%s); /metrics is not served",
                          listen, exc.strerror or exc)
            else:
                log.info("metrics served on http://%s/metrics", listen)
        if self.writer is not None:
            self.writer.start()

    def quiet(self) -> None:
        """The loop is quiet: a good moment to refresh the textfile."""
        if self.writer is not None:
            self.writer.poke()

    def stop(self) -> None:
        """Stop serving; write the textfile one last time (the caller says the daemon is down
        by then: its collector's live state is gone). Not started, it leaves the file alone:
        it may be another daemon's, which holds the lock this one did not get."""
        if not self.started:
            return
        self.started = False
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
            self.server = None
        if self.writer is not None:
            self.writer.stop()
            self._write_textfile()

    def _write_textfile(self) -> None:
        path = self.config.textfile
        assert path is not None
        try:
            write_to_textfile(str(path), self.registry)
        except Exception as exc:  # a metrics file is not worth stopping the daemon for
            log.warning("metrics: cannot write %s: %s", path, exc)


class TextfileWriter:
    """A thread that calls `write` after each `poke`, at most once every `every` seconds;
    pokes that come meanwhile are served by one write."""

    def __init__(self, write: Callable[[], None], every: float) -> None:
        self.write = write
        self.every = every
        self.poked = threading.Event()
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._run, name="easyflow-metrics-textfile",
                                       daemon=True)

    def start(self) -> None:
        self.poked.set()  # the first file at once: the daemon is up
        self.thread.start()

    def poke(self) -> None:
        self.poked.set()

    def stop(self) -> None:
        self.stopping.set()
        self.poked.set()
        self.thread.join()

    def _run(self) -> None:
        while not self.stopping.is_set():
            self.poked.wait()
            if self.stopping.is_set():
                return
            self.poked.clear()
            self.write()
            self.stopping.wait(self.every)
