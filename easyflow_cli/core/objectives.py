"""What each mode promises its runs, the measure of user satisfaction: a real-time or balanced
run starts within its pool's `start_within` of its submission; an eco run finishes by its
deadline, or, with none, starts within `max_delay`. A run with a deadline that was promoted to
real-time (or asked for one) keeps its promise by finishing in time.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from easyflow_cli.core.config import Config
from easyflow_cli.core.durations import format_duration
from easyflow_cli.core.model import Mode


@dataclass(frozen=True)
class Objectives:
    start_within: dict[Mode, float | None]  # real-time and balanced; None: no objective
    max_delay: float                        # eco runs without a deadline

    @classmethod
    def from_config(cls, config: Config) -> Objectives:
        return cls({mode: config.pool(mode).start_within
                    for mode in (Mode.REAL_TIME, Mode.BALANCED)},
                   config.pool(Mode.ECO).max_delay)

    def measured(self, mode: Mode) -> bool:
        return mode is Mode.ECO or self.start_within[mode] is not None

    def describe(self, mode: Mode) -> str:
        if mode is Mode.ECO:
            return (f"finish by the deadline; without one, start within "
                    f"{format_duration(self.max_delay)}")
        within = self.start_within[mode]
        return "none" if within is None else f"start within {format_duration(within)}"

    def as_json(self) -> dict[str, Any]:
        return {**{mode.value: {"start_within_s": within}
                   for mode, within in self.start_within.items()},
                Mode.ECO.value: {"deadline": True, "max_delay_s": self.max_delay}}
