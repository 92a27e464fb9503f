"""Measured energy from Linux RAPL counters (`/sys/class/powercap`), where they are readable.

The counters cover whole CPU packages, not one process: a run's reading is the energy the
package(s) used while it ran, which includes whatever else the machine did meanwhile. Reports
say which runs were measured this way and which were estimated from CPU time.
"""

from __future__ import annotations

from pathlib import Path

POWERCAP = Path("/sys/class/powercap")


class EnergyMeter:
    """Reads the package-level counters; `available` is False where there are none we can read."""

    def __init__(self, root: Path = POWERCAP) -> None:
        self.zones = []
        for zone in sorted(root.glob("intel-rapl:*")) if root.exists() else []:
            if zone.name.count(":") != 1:  # sub-zones (core, dram) are inside the package
                continue
            counter, limit = zone / "energy_uj", zone / "max_energy_range_uj"
            try:
                self.zones.append((counter, int(limit.read_text()), int(counter.read_text())))
            except (OSError, ValueError):
                continue

    @property
    def available(self) -> bool:
        return bool(self.zones)

    def read(self) -> list[int] | None:
        try:
            return [int(counter.read_text()) for counter, _, _ in self.zones]
        except (OSError, ValueError):
            return None

    def joules_between(self, before: list[int] | None, after: list[int] | None) -> float | None:
        """Energy used between two readings, allowing for each counter's wrap-around."""
        if not self.available or before is None or after is None:
            return None
        total = 0
        for (_, limit, _), first, last in zip(self.zones, before, after, strict=True):
            total += last - first if last >= first else limit - first + last
        return total / 1e6
