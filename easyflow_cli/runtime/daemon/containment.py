"""How the daemon stops what runs left running once their worker, their daemon or their
terminal is gone: their cgroups, where the daemon has one delegated (run_cgroup.py), and the
processes carrying their mark in any case (run_marker.py), so a step that joined no cgroup is
found too. Both only on these rare paths: a look through /proc costs milliseconds per
thousand processes, too much for every step's end, where the worker's subreaper suffices.
"""

from __future__ import annotations

import logging
from collections.abc import Collection
from pathlib import Path

from easyflow_cli.runtime import run_cgroup
from easyflow_cli.runtime.run_marker import kill_marked

log = logging.getLogger("easyflow.daemon")


class Containment:
    def __init__(self, cgroup: Path | None, how: str) -> None:
        self.cgroup = cgroup  # the daemon's delegated cgroup, the runs' cgroups below it
        self.how = how  # a sentence for the log

    @classmethod
    def detect(cls) -> Containment:
        cgroup, how = run_cgroup.detect()
        return cls(cgroup, how if cgroup else f"the environment mark ({how})")

    def stop(self, run_ids: Collection[int], tokens: Collection[str]) -> None:
        """Kill every process of these runs (started under any of `tokens`)."""
        if not run_ids or not tokens:
            return
        groups = run_cgroup.kill_runs(self.cgroup, run_ids, tokens) if self.cgroup else 0
        marked = kill_marked(run_ids, tokens)
        if groups or marked:
            log.warning("killed what runs %s left running: %d cgroups, %d marked processes",
                        ", ".join(map(str, sorted(run_ids))), groups, marked)

    def prune(self) -> None:
        if self.cgroup:
            run_cgroup.prune(self.cgroup)


MARKS_ONLY = Containment(None, "the environment mark")
