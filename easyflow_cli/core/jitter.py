"""A schedule's jitter: each fire delayed by the same pseudo-random offset within it, as
systemd's `RandomizedDelaySec=` with `FixedRandomDelay=true`.

The offset comes from a hash of the machine and the schedule, so it survives restarts, is the
same for the daemon and for `schedule next`, and differs between machines and schedules: a
fleet given the same `@hourly` does not fire all at once.
"""

from __future__ import annotations

import hashlib
from datetime import timedelta

# The salt's precision: an offset is a whole number of milliseconds.
_MS_PER_S = 1000


def fixed_delay(jitter_s: float | None, salt: str) -> timedelta:
    """The offset for this salt: from zero up to (not including) `jitter_s`."""
    if not jitter_s:
        return timedelta(0)
    span_ms = int(jitter_s * _MS_PER_S)
    if span_ms < 1:
        return timedelta(0)
    digest = hashlib.sha256(salt.encode()).digest()
    return timedelta(milliseconds=int.from_bytes(digest[:8], "big") % span_ms)


def schedule_salt(machine_id: str, workflow: str, schedule_id: int) -> str:
    """What a schedule's offset is derived from: this machine, the workflow, the schedule."""
    return f"{machine_id}:{workflow}:{schedule_id}"
