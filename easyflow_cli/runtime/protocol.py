"""Every message the daemon exchanges, one JSON object per line: orders to its workers (run,
cancel, release, retire), their reports (ready, started, step, finished, ran, released; several
"ran" reports in a row as one ran_rows), clients' requests on its socket (wake, reload, status,
cancel) and its replies.

Each message is a dataclass that writes itself as JSON; the `decode_*` functions are the one
place a line is read back and checked (through wire.py's field checks): whatever is malformed
becomes a `ProtocolError` that says what is wrong, never a KeyError three calls later. The
worker imports this module: nothing here touches the database.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar, cast

from easyflow_cli.core.errors import shown
from easyflow_cli.core.model import Outcome, RunState
from easyflow_cli.runtime.wire import Fields, ProtocolError, decode_line

_PID = "a process id (a positive integer)"


class _Plain:
    """Written as its fields, as they are."""

    __slots__ = ()

    def to_json(self) -> dict[str, Any]:
        names: tuple[str, ...] = self.__slots__  # a slotted dataclass's are its fields
        return {name: getattr(self, name) for name in names}


class _Message(_Plain):
    """Written as its tag (`op` or `ev`), then its fields."""

    __slots__ = ()

    def to_json(self) -> dict[str, Any]:
        tag = "op" if hasattr(self, "op") else "ev"
        return {tag: getattr(self, tag), **_Plain.to_json(self)}


# ------------------------------------------------------------------ orders (daemon → worker)


@dataclass(slots=True)
class RunLimits(_Plain):
    """How a run may execute: its time limit and the priority of its processes."""

    timeout: float
    nice: int = 0
    kill_grace: float = 5.0
    log_max_bytes: int = 10 * 1024 * 1024


@dataclass(slots=True)
class SpecEntry(_Plain):
    """A workflow's spec as stored (validated again by the worker) and the file it came from."""

    spec: dict[str, Any]
    source_file: str | None


@dataclass(slots=True)
class RunTicket:
    id: int
    workflow: str
    log_path: str


# A `run` order's run: a list of these values, in this order (no field names to write and
# read again for each of the dozens of runs a short-run pool's worker is handed at once).
TICKET_ROW = ("id", "workflow", "log_path")


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
                "runs": [[r.id, r.workflow, r.log_path] for r in self.runs]}


@dataclass(slots=True)
class CancelOrder(_Message):
    op: ClassVar[str] = "cancel"
    id: int


@dataclass(slots=True)
class ReleaseOrder(_Message):
    """Give back the runs not started yet: another worker is free for them."""

    op: ClassVar[str] = "release"


@dataclass(slots=True)
class RetireOrder(_Message):
    """Finish what you hold, then exit."""

    op: ClassVar[str] = "retire"


Order = RunOrder | CancelOrder | ReleaseOrder | RetireOrder


# ------------------------------------------------------------------ reports (worker → daemon)
# Times are seconds since the epoch: the worker's clock, read where the thing happened.


@dataclass(slots=True)
class Ready(_Message):
    ev: ClassVar[str] = "ready"
    pid: int


@dataclass(slots=True)
class Started(_Message):
    ev: ClassVar[str] = "started"
    id: int
    at: float


@dataclass(slots=True)
class Step(_Message):
    """A step runs in this process group, led by a process that began at `leader_start`
    (clock ticks since boot; None if it was already reaped)."""

    ev: ClassVar[str] = "step"
    id: int
    pgid: int
    leader_start: int | None = None


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


# A "ran_rows" report's row: a run's "ran" report as a list of its values in this order.
RAN_ROW = ("id", "started_at", "at", "state", "exit_code", "error", "cpu_user_s",
           "cpu_system_s", "peak_rss_kb", "energy_j", "duration_s")


@dataclass(slots=True)
class RanRows:
    """Several short runs' "ran" reports in one, a row of values (RAN_ROW) each.

    Sent for consecutive "ran" reports: a worker draining short runs sends dozens at a time,
    and lists of values are written and read in a fraction of the time objects naming every
    field take. Read back as the "ran" reports it carries (`decode_reports`)."""

    ev: ClassVar[str] = "ran_rows"
    runs: list[Ran]

    def to_json(self) -> dict[str, Any]:
        return {"ev": "ran_rows", "runs": [_ran_row(ran) for ran in self.runs]}


@dataclass(slots=True)
class Released(_Message):
    """The runs given back unstarted, after a `release` order."""

    ev: ClassVar[str] = "released"
    ids: list[int]


Report = Ready | Started | Step | Finished | Ran | Released


# ------------------------------------------------------------------ socket requests and replies


@dataclass(slots=True)
class WakeRequest(_Message):
    """New runs are queued, planned by the policy the daemon published: dispatch now.

    Clients before the published policy sent the ids of their runs in `runs`; they are ignored
    unread (they are planned, if by the client's config, and one short line is all a wake-up
    needs)."""

    op: ClassVar[str] = "wake"


@dataclass(slots=True)
class ReloadRequest(_Message):
    op: ClassVar[str] = "reload"


@dataclass(slots=True)
class StatusRequest(_Message):
    op: ClassVar[str] = "status"


@dataclass(slots=True)
class CancelRequest(_Message):
    op: ClassVar[str] = "cancel"
    id: int


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
class Stopping:
    """A wake-up refused because the daemon is draining: the runs stay queued for its next
    start (`stopping` lets a client tell this from a malformed request)."""

    error: str = "the daemon is stopping"

    def to_json(self) -> dict[str, Any]:
        return {"ok": False, "error": self.error, "stopping": True}


@dataclass(slots=True)
class PoolStatus(_Plain):
    busy: int
    size: int
    ready: int
    workers: list[int]
    states: dict[str, int]  # workers by state (pools.WORKER_STATES)


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
    running: list[dict[str, Any]]  # the runs running now (reporting/running.py)
    fault: str | None = None  # a database file deleted or replaced under the daemon
    # {"pending": deliveries waiting, "failing": channels that keep failing}
    notifications: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {"pid": self.pid, "since": self.since, "state": self.state, "home": self.home,
                "config": self.config,
                "pools": {mode: pool.to_json() for mode, pool in self.pools.items()},
                "queue": self.queue, "next_fires": self.next_fires, "running": self.running,
                "fault": self.fault,
                "notifications": self.notifications}


Reply = Done | Refusal | Stopping | StatusReply


# ------------------------------------------------------------------ encoding


def encode(message: Order | Report | Request | Reply) -> bytes:
    """One message as its line on the wire."""
    return json.dumps(message.to_json(), default=str).encode() + b"\n"


def encode_all(messages: list[Report]) -> bytes:
    """Reports as lines, in order; consecutive "ran" reports as one "ran_rows" line."""
    return "".join(json.dumps(m.to_json()) + "\n" for m in _with_rows(messages)).encode()


def _with_rows(reports: list[Report]) -> list[Report | RanRows]:
    grouped: list[Report | RanRows] = []
    for report in reports:
        last = grouped[-1] if grouped else None
        if type(report) is not Ran:
            grouped.append(report)
        elif type(last) is RanRows:
            last.runs.append(report)
        elif type(last) is Ran:
            grouped[-1] = RanRows([last, report])
        else:
            grouped.append(report)
    return grouped


def _ran_row(ran: Ran) -> list[Any]:
    o = ran.outcome
    return [ran.id, ran.started_at, ran.at, o.state, o.exit_code, o.error, o.cpu_user_s,
            o.cpu_system_s, o.peak_rss_kb, o.energy_j, o.duration_s]


def _outcome_json(outcome: Outcome) -> dict[str, Any]:
    # Outcome is flat: a copy of its fields is what dataclasses.asdict gives, without the deep
    # copy that was a visible share of a no-op run's cost.
    return dict(vars(outcome))


# ------------------------------------------------------------ decoding: the one validation point


def decode_order(line: bytes) -> Order:
    return decode_line(line, "op", _ORDERS, "order")


def decode_report(line: bytes) -> Report | RanRows:
    return decode_line(line, "ev", _REPORTS, "report")


def decode_reports(lines: list[bytes]) -> list[Report]:
    """The reports these lines hold, in order, a "ran_rows" line's runs one by one."""
    reports: list[Report] = []
    for line in lines:
        report = decode_report(line)
        if type(report) is RanRows:
            reports += report.runs
        else:
            reports.append(cast(Report, report))
    return reports


def decode_request(line: bytes) -> Request:
    return decode_line(line, "op", _REQUESTS, "request")


def _run_order(f: Fields) -> RunOrder:
    limits = f.inner("limits")
    order = RunOrder(
        RunLimits(limits.number("timeout"), limits.integer("nice"),
                  limits.number("kill_grace"), limits.integer("log_max_bytes")),
        {name: _spec_entry(name, entry) for name, entry in f.table("specs").items()},
        [_ticket(index, row) for index, row in enumerate(f.items("runs"))])
    for ticket in order.runs:
        if ticket.workflow not in order.specs:
            raise ProtocolError(f"run: no spec for run {ticket.id}'s workflow "
                                f"{shown(ticket.workflow)}")
    return order


def _spec_entry(name: str, entry: Any) -> SpecEntry:
    fields = Fields.of(f"run: specs[{shown(name)}]", entry)
    return SpecEntry(fields.table("spec"), fields.text("source_file", optional=True))


def _ticket(index: int, row: Any) -> RunTicket:
    if type(row) is not list or len(row) != len(TICKET_ROW):
        raise ProtocolError(f"run: runs[{index}] must be a list of {len(TICKET_ROW)} values"
                            f" ({', '.join(TICKET_ROW)}), got {shown(row)}")
    fields = Fields("run", dict(zip(TICKET_ROW, row, strict=True)), f"runs[{index}]")
    return RunTicket(fields.positive("id"), fields.text("workflow"), fields.text("log_path"))


def _outcome(f: Fields) -> Outcome:
    return _outcome_of(f.inner("outcome"))


def _outcome_of(o: Fields) -> Outcome:
    state = o.data.get("state")
    if type(state) is not str or state not in _ENDED_STATES:
        raise o.fail("state", "a run's end state")
    return Outcome(_ENDED_STATES[state], o.integer("exit_code", True), o.text("error", True),
                   o.number("cpu_user_s"), o.number("cpu_system_s"), o.integer("peak_rss_kb"),
                   o.number("energy_j", True), o.number("duration_s", True))


def _ran_rows(f: Fields) -> RanRows:
    return RanRows([_row_ran(index, row) for index, row in enumerate(f.items("runs"))])


def _row_ran(index: int, row: Any) -> Ran:
    if type(row) is not list or len(row) != len(RAN_ROW):
        raise ProtocolError(f"ran_rows: runs[{index}] must be a list of {len(RAN_ROW)} values"
                            f" ({', '.join(RAN_ROW)}), got {shown(row)}")
    f = Fields("ran_rows", dict(zip(RAN_ROW, row, strict=True)), f"runs[{index}]")
    return Ran(f.positive("id"), f.number("started_at"), f.number("at"), _outcome_of(f))


_ENDED_STATES = {s.value: s for s in (RunState.SUCCEEDED, RunState.FAILED, RunState.TIMED_OUT,
                                      RunState.CANCELLED)}

_ORDERS: dict[str, Callable[[Fields], Any]] = {
    "run": _run_order,
    "cancel": lambda f: CancelOrder(f.positive("id")),
    "release": lambda f: ReleaseOrder(),
    "retire": lambda f: RetireOrder(),
}

_REPORTS: dict[str, Callable[[Fields], Any]] = {
    "ready": lambda f: Ready(f.positive("pid", _PID)),
    "started": lambda f: Started(f.positive("id"), f.number("at")),
    "step": lambda f: Step(f.positive("id"), f.positive("pgid", _PID),
                           f.integer("leader_start", optional=True)),
    "finished": lambda f: Finished(f.positive("id"), f.number("at"), _outcome(f)),
    "ran": lambda f: Ran(f.positive("id"), f.number("started_at"), f.number("at"), _outcome(f)),
    "ran_rows": _ran_rows,
    "released": lambda f: Released(f.run_ids("ids")),
}

_REQUESTS: dict[str, Callable[[Fields], Any]] = {
    "wake": lambda f: WakeRequest(),
    "reload": lambda f: ReloadRequest(),
    "status": lambda f: StatusRequest(),
    "cancel": lambda f: CancelRequest(f.positive("id")),
}
