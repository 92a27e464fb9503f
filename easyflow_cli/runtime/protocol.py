"""Every message the daemon exchanges: with its workers over their pipes, with clients over its
socket. One JSON object per line each way.

Orders (daemon → worker): run, cancel, ack, release, retire. Reports (worker → daemon): ready,
started, step, finished, ran, released. Requests (client → daemon): wake, reload, status,
cancel, answered by one reply each.

Each message is a dataclass that writes itself as JSON (`to_json`); the `decode_*` functions are
the one place a line is read back, and every check on what arrives is made there: whatever is
malformed becomes a `ProtocolError` that says what is wrong, never a KeyError three calls later.

The worker imports this module: nothing here touches the database.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

from easyflow_cli.core.errors import shown
from easyflow_cli.core.model import Outcome, RunState

# SQLite's INTEGER is signed 64-bit: a run id or a process id beyond it names nothing.
MAX_ID = 2**63 - 1
# A worker holds a few dozen runs; a client wakes the daemon for the runs of one submission.
MAX_IDS = 100_000


class ProtocolError(ValueError):
    """A message that is not one of ours: its text says what is wrong with it."""


# ------------------------------------------------------------------ orders (daemon → worker)


@dataclass(slots=True)
class RunLimits:
    """How a run may execute: its time limit and the priority of its processes."""

    timeout: float
    nice: int = 0
    kill_grace: float = 5.0
    log_max_bytes: int = 10 * 1024 * 1024

    def to_json(self) -> dict[str, Any]:
        return {"timeout": self.timeout, "nice": self.nice, "kill_grace": self.kill_grace,
                "log_max_bytes": self.log_max_bytes}


@dataclass(slots=True)
class SpecEntry:
    """A workflow's spec as stored (validated again by the worker) and the file it came from."""

    spec: dict[str, Any]
    source_file: str | None

    def to_json(self) -> dict[str, Any]:
        return {"spec": self.spec, "source_file": self.source_file}


@dataclass(slots=True)
class RunTicket:
    """One run of a `run` order: which workflow, and where its log goes."""

    id: int
    workflow: str
    log_path: str


@dataclass(slots=True)
class RunOrder:
    """Run these, in this order, with these limits."""

    op: ClassVar[str] = "run"
    limits: RunLimits
    specs: dict[str, SpecEntry]
    runs: list[RunTicket]

    def to_json(self) -> dict[str, Any]:
        return {"op": "run", "limits": self.limits.to_json(),
                "specs": {name: entry.to_json() for name, entry in self.specs.items()},
                "runs": [{"id": r.id, "workflow": r.workflow, "log_path": r.log_path}
                         for r in self.runs]}


@dataclass(slots=True)
class CancelOrder:
    op: ClassVar[str] = "cancel"
    id: int

    def to_json(self) -> dict[str, Any]:
        return {"op": "cancel", "id": self.id}


@dataclass(slots=True)
class AckOrder:
    """The step's process group is recorded: let it run."""

    op: ClassVar[str] = "ack"
    id: int
    pgid: int

    def to_json(self) -> dict[str, Any]:
        return {"op": "ack", "id": self.id, "pgid": self.pgid}


@dataclass(slots=True)
class ReleaseOrder:
    """Give back the runs not started yet: another worker is free for them."""

    op: ClassVar[str] = "release"

    def to_json(self) -> dict[str, Any]:
        return {"op": "release"}


@dataclass(slots=True)
class RetireOrder:
    """Finish what you hold, then exit."""

    op: ClassVar[str] = "retire"

    def to_json(self) -> dict[str, Any]:
        return {"op": "retire"}


Order = RunOrder | CancelOrder | AckOrder | ReleaseOrder | RetireOrder


# ------------------------------------------------------------------ reports (worker → daemon)
# Times are seconds since the epoch: the worker's clock, read where the thing happened.


@dataclass(slots=True)
class Ready:
    ev: ClassVar[str] = "ready"
    pid: int

    def to_json(self) -> dict[str, Any]:
        return {"ev": "ready", "pid": self.pid}


@dataclass(slots=True)
class Started:
    ev: ClassVar[str] = "started"
    id: int
    at: float

    def to_json(self) -> dict[str, Any]:
        return {"ev": "started", "id": self.id, "at": self.at}


@dataclass(slots=True)
class Step:
    """A step is parked in this process group until the daemon acknowledges it."""

    ev: ClassVar[str] = "step"
    id: int
    pgid: int

    def to_json(self) -> dict[str, Any]:
        return {"ev": "step", "id": self.id, "pgid": self.pgid}


@dataclass(slots=True)
class Finished:
    ev: ClassVar[str] = "finished"
    id: int
    at: float
    outcome: Outcome

    def to_json(self) -> dict[str, Any]:
        return {"ev": "finished", "id": self.id, "at": self.at,
                "outcome": _outcome_json(self.outcome)}


@dataclass(slots=True)
class Ran:
    """A short run's start and end in one report."""

    ev: ClassVar[str] = "ran"
    id: int
    started_at: float
    at: float
    outcome: Outcome

    def to_json(self) -> dict[str, Any]:
        return {"ev": "ran", "id": self.id, "started_at": self.started_at, "at": self.at,
                "outcome": _outcome_json(self.outcome)}


@dataclass(slots=True)
class Released:
    """The runs given back unstarted, after a `release` order."""

    ev: ClassVar[str] = "released"
    ids: list[int]

    def to_json(self) -> dict[str, Any]:
        return {"ev": "released", "ids": self.ids}


Report = Ready | Started | Step | Finished | Ran | Released


# ------------------------------------------------------------------ socket requests and replies


@dataclass(slots=True)
class WakeRequest:
    """New runs are queued; the daemon re-plans their off-peak wait by its own config."""

    op: ClassVar[str] = "wake"
    runs: list[int]

    def to_json(self) -> dict[str, Any]:
        return {"op": "wake", "runs": self.runs}


@dataclass(slots=True)
class ReloadRequest:
    op: ClassVar[str] = "reload"

    def to_json(self) -> dict[str, Any]:
        return {"op": "reload"}


@dataclass(slots=True)
class StatusRequest:
    op: ClassVar[str] = "status"

    def to_json(self) -> dict[str, Any]:
        return {"op": "status"}


@dataclass(slots=True)
class CancelRequest:
    op: ClassVar[str] = "cancel"
    id: int

    def to_json(self) -> dict[str, Any]:
        return {"op": "cancel", "id": self.id}


Request = WakeRequest | ReloadRequest | StatusRequest | CancelRequest


@dataclass(slots=True)
class Done:
    """The request was taken; `state` (cancel) says where the run is now."""

    state: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {"ok": True} if self.state is None else {"ok": True, "state": self.state}


@dataclass(slots=True)
class Refusal:
    error: str

    def to_json(self) -> dict[str, Any]:
        return {"ok": False, "error": self.error}


@dataclass(slots=True)
class PoolStatus:
    busy: int
    size: int
    ready: int
    workers: list[int]

    def to_json(self) -> dict[str, Any]:
        return {"busy": self.busy, "size": self.size, "ready": self.ready,
                "workers": self.workers}


@dataclass(slots=True)
class StatusReply:
    """What `easyflow daemon status` shows (the JSON fields are its documented output)."""

    pid: int
    since: str
    state: str
    home: str
    config: str
    pools: dict[str, PoolStatus]
    queue: dict[str, int]
    next_fires: list[dict[str, Any]]

    def to_json(self) -> dict[str, Any]:
        return {"pid": self.pid, "since": self.since, "state": self.state, "home": self.home,
                "config": self.config,
                "pools": {mode: pool.to_json() for mode, pool in self.pools.items()},
                "queue": self.queue, "next_fires": self.next_fires}


Reply = Done | Refusal | StatusReply


# ------------------------------------------------------------------ encoding


def encode(message: Order | Report | Request | Reply) -> bytes:
    """One message as its line on the wire."""
    return json.dumps(message.to_json(), default=str).encode() + b"\n"


def encode_all(messages: list[Report]) -> bytes:
    return "".join(json.dumps(m.to_json()) + "\n" for m in messages).encode()


def _outcome_json(outcome: Outcome) -> dict[str, Any]:
    # Outcome is flat: a copy of its fields is what dataclasses.asdict gives, without the deep
    # copy that was a visible share of a no-op run's cost.
    return dict(vars(outcome))


# ------------------------------------------------------------ decoding: the one validation point


def decode_order(line: bytes) -> Order:
    return _decode(line, "op", _ORDERS, "order")


def decode_report(line: bytes) -> Report:
    return _decode(line, "ev", _REPORTS, "report")


def decode_request(line: bytes) -> Request:
    return _decode(line, "op", _REQUESTS, "request")


def _decode(line: bytes, tag: str, table: dict[str, Callable[[_Fields], Any]], what: str) -> Any:
    try:
        data = json.loads(line)
    except (ValueError, RecursionError) as exc:  # UnicodeDecodeError is a ValueError
        raise ProtocolError(f"a {what} is one JSON object per line: {shown(str(exc))}") from None
    if not isinstance(data, dict):
        raise ProtocolError(f"a {what} is one JSON object, not {_kind(data)}")
    kind = data.get(tag)
    build = table.get(kind) if isinstance(kind, str) else None
    if build is None:
        raise ProtocolError(f"unknown {tag} {shown(kind)}")
    return build(_Fields(kind, data))


class _Fields:
    """A message's fields, each read through a check that names the field when it fails."""

    __slots__ = ("kind", "data")

    def __init__(self, kind: str, data: dict[str, Any]) -> None:
        self.kind = kind
        self.data = data

    def fail(self, name: str, must: str) -> ProtocolError:
        value = self.data.get(name)
        got = "missing" if name not in self.data else f"got {shown(value)}"
        return ProtocolError(f"{self.kind}: {name} must be {must} ({got})")

    def run_id(self, name: str = "id") -> int:
        value = self.data.get(name)
        if type(value) is not int or not 0 < value <= MAX_ID:
            raise self.fail(name, "a run id (a positive integer)")
        return value

    def run_ids(self, name: str) -> list[int]:
        values = self.data.get(name, [])
        if type(values) is not list or len(values) > MAX_IDS:
            raise self.fail(name, f"a list of at most {MAX_IDS} run ids")
        if not all(type(v) is int and 0 < v <= MAX_ID for v in values):
            raise self.fail(name, "a list of run ids (positive integers)")
        return values

    def pid(self, name: str) -> int:
        value = self.data.get(name)
        if type(value) is not int or not 0 < value <= MAX_ID:
            raise self.fail(name, "a process id (a positive integer)")
        return value

    def number(self, name: str, *, optional: bool = False) -> Any:
        value = self.data.get(name)
        if optional and value is None:
            return None
        if type(value) not in (int, float) or not math.isfinite(value) or value < 0:
            raise self.fail(name, "a finite number, not negative")
        return value

    def integer(self, name: str, *, optional: bool = False) -> Any:
        value = self.data.get(name)
        if optional and value is None:
            return None
        if type(value) is not int or abs(value) > MAX_ID:
            raise self.fail(name, "an integer")
        return value

    def text(self, name: str, *, optional: bool = False) -> Any:
        value = self.data.get(name)
        if optional and value is None:
            return None
        if type(value) is not str:
            raise self.fail(name, "a string")
        return value

    def table(self, name: str) -> dict[str, Any]:
        value = self.data.get(name)
        if type(value) is not dict:
            raise self.fail(name, "an object")
        return value

    def inner(self, name: str) -> _Fields:
        return _Fields(f"{self.kind}.{name}", self.table(name))


def _kind(value: Any) -> str:
    return "null" if value is None else type(value).__name__


def _run_order(f: _Fields) -> RunOrder:
    limits = f.inner("limits")
    order = RunOrder(
        RunLimits(limits.number("timeout"), limits.integer("nice"),
                  limits.number("kill_grace"), limits.integer("log_max_bytes")),
        {name: _spec_entry(f, name, entry) for name, entry in f.table("specs").items()},
        [_ticket(f, run) for run in _list(f, "runs")])
    for ticket in order.runs:
        if ticket.workflow not in order.specs:
            raise ProtocolError(f"run: no spec for run {ticket.id}'s workflow "
                                f"{shown(ticket.workflow)}")
    return order


def _list(f: _Fields, name: str) -> list[Any]:
    value = f.data.get(name)
    if type(value) is not list or len(value) > MAX_IDS:
        raise f.fail(name, f"a list of at most {MAX_IDS} entries")
    return value


def _spec_entry(f: _Fields, name: str, entry: Any) -> SpecEntry:
    if type(entry) is not dict:
        raise ProtocolError(f"run: specs[{shown(name)}] must be an object")
    fields = _Fields(f"run: specs[{shown(name)}]", entry)
    return SpecEntry(fields.table("spec"), fields.text("source_file", optional=True))


def _ticket(f: _Fields, run: Any) -> RunTicket:
    if type(run) is not dict:
        raise ProtocolError(f"run: each of runs must be an object (got {shown(run)})")
    fields = _Fields("run: runs[]", run)
    return RunTicket(fields.run_id(), fields.text("workflow"), fields.text("log_path"))


def _outcome(f: _Fields) -> Outcome:
    o = f.inner("outcome")
    state = o.data.get("state")
    if state not in _ENDED_STATES:
        raise o.fail("state", "a run's end state")
    return Outcome(RunState(state), o.integer("exit_code", optional=True),
                   o.text("error", optional=True), o.number("cpu_user_s"),
                   o.number("cpu_system_s"), o.integer("peak_rss_kb"),
                   o.number("energy_j", optional=True))


_ENDED_STATES = {s.value for s in (RunState.SUCCEEDED, RunState.FAILED, RunState.TIMED_OUT,
                                   RunState.CANCELLED)}

_ORDERS: dict[str, Callable[[_Fields], Any]] = {
    "run": _run_order,
    "cancel": lambda f: CancelOrder(f.run_id()),
    "ack": lambda f: AckOrder(f.run_id(), f.pid("pgid")),
    "release": lambda f: ReleaseOrder(),
    "retire": lambda f: RetireOrder(),
}

_REPORTS: dict[str, Callable[[_Fields], Any]] = {
    "ready": lambda f: Ready(f.pid("pid")),
    "started": lambda f: Started(f.run_id(), f.number("at")),
    "step": lambda f: Step(f.run_id(), f.pid("pgid")),
    "finished": lambda f: Finished(f.run_id(), f.number("at"), _outcome(f)),
    "ran": lambda f: Ran(f.run_id(), f.number("started_at"), f.number("at"), _outcome(f)),
    "released": lambda f: Released(f.run_ids("ids")),
}

_REQUESTS: dict[str, Callable[[_Fields], Any]] = {
    "wake": lambda f: WakeRequest(f.run_ids("runs")),
    "reload": lambda f: ReloadRequest(),
    "status": lambda f: StatusRequest(),
    "cancel": lambda f: CancelRequest(f.run_id()),
}
