"""The messages of runtime/protocol.py: each one survives its trip over the wire, and whatever
is not one of them is refused with a message that says why."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from hypothesis import given
from hypothesis import strategies as st

from easyflow_cli.core.model import Outcome, RunState
from easyflow_cli.runtime.protocol import (
    RAN_ROW,
    CancelOrder,
    CancelRequest,
    Done,
    Finished,
    ProtocolError,
    Ran,
    Ready,
    Refusal,
    Released,
    ReleaseOrder,
    ReloadRequest,
    RetireOrder,
    RunLimits,
    RunOrder,
    RunTicket,
    SpecEntry,
    Started,
    StatusRequest,
    Step,
    WakeRequest,
    decode_order,
    decode_report,
    decode_reports,
    decode_request,
    encode,
    encode_all,
)
from easyflow_cli.runtime.wire import MAX_ID, MAX_IDS

ids = st.integers(1, MAX_ID)
moments = st.floats(0, 4e9, allow_nan=False)
amounts = st.floats(0, 1e12, allow_nan=False)
texts = st.text(max_size=30)
json_values = st.recursive(st.none() | st.booleans() | st.integers(-10**6, 10**6) | texts,
                           lambda inner: st.lists(inner, max_size=3)
                           | st.dictionaries(texts, inner, max_size=3), max_leaves=10)
outcomes = st.builds(
    Outcome, st.sampled_from([RunState.SUCCEEDED, RunState.FAILED, RunState.TIMED_OUT,
                              RunState.CANCELLED]),
    st.none() | st.integers(-255, 255), st.none() | texts, amounts, amounts,
    st.integers(0, 10**9), st.none() | amounts)
limits = st.builds(RunLimits, amounts, st.integers(-20, 19), amounts, st.integers(0, 2**40))


@st.composite
def run_orders(draw) -> RunOrder:
    names = draw(st.lists(texts, min_size=1, max_size=3, unique=True))
    specs = {name: SpecEntry(draw(st.dictionaries(texts, json_values, max_size=3)),
                             draw(st.none() | texts)) for name in names}
    runs = draw(st.lists(st.builds(RunTicket, ids, st.sampled_from(names), texts), max_size=5))
    return RunOrder(draw(limits), specs, runs)


orders = (run_orders() | st.builds(CancelOrder, ids) | st.just(ReleaseOrder())
          | st.just(RetireOrder()))
reports = (st.builds(Ready, ids) | st.builds(Started, ids, moments)
           | st.builds(Step, ids, ids, st.none() | ids)
           | st.builds(Finished, ids, moments, outcomes)
           | st.builds(Ran, ids, moments, moments, outcomes)
           | st.builds(Released, st.lists(ids, max_size=40)))
requests = (st.just(WakeRequest()) | st.just(ReloadRequest())
            | st.just(StatusRequest()) | st.builds(CancelRequest, ids))


@given(orders)
def test_orders_round_trip(order):
    assert decode_order(encode(order)) == order


@given(reports)
def test_reports_round_trip(report):
    assert decode_report(encode(report)) == report


@given(st.lists(reports, max_size=8))
def test_reports_sent_together_are_read_back_in_order(batch):
    assert decode_reports(encode_all(batch).splitlines()) == batch


@given(st.lists(st.builds(Ran, ids, moments, moments, outcomes), min_size=2, max_size=6))
def test_short_runs_reported_together_are_read_back_as_they_were_sent(rans):
    [line] = encode_all(rans).splitlines()
    assert decode_reports([line]) == rans


def test_consecutive_ran_reports_leave_as_one_line_of_rows():
    ok, failed = Outcome(RunState.SUCCEEDED, 0), Outcome(RunState.FAILED, 1, "boom", 0.5)
    batch = [Ran(1, 1.0, 2.0, ok), Ran(2, 2.0, 3.0, failed), Started(3, 3.0),
             Ran(3, 3.0, 4.0, ok)]
    rows, start, single = [json.loads(line) for line in encode_all(batch).splitlines()]
    assert rows == {"ev": "ran_rows", "runs": [
        [1, 1.0, 2.0, "succeeded", 0, None, 0.0, 0.0, 0, None, None],
        [2, 2.0, 3.0, "failed", 1, "boom", 0.5, 0.0, 0, None, None]]}
    assert [len(row) for row in rows["runs"]] == [len(RAN_ROW)] * 2
    assert (start["ev"], single["ev"]) == ("started", "ran")


@given(requests)
def test_requests_round_trip(request):
    assert decode_request(encode(request)) == request


def test_replies_are_the_documented_json():
    assert json.loads(encode(Done())) == {"ok": True}
    assert json.loads(encode(Done("stopping"))) == {"ok": True, "state": "stopping"}
    assert json.loads(encode(Refusal("no"))) == {"ok": False, "error": "no"}


BAD_REQUESTS = {
    b"garbage": "one JSON object per line",
    b"\xff\xfe": "one JSON object per line",
    b"[" * 50_000: "one JSON object per line",
    b"[]": "one JSON object, not list",
    b"null": "one JSON object, not null",
    b'"status"': "one JSON object, not str",
    b'{"op": 5}': "unknown op 5",
    b'{"op": "launch"}': "unknown op 'launch'",
    b'{"runs": []}': "unknown op None",
    b'{"op": "cancel"}': "cancel: id must be a run id (a positive integer) (missing)",
    b'{"op": "cancel", "id": null}': "cancel: id must be a run id",
    b'{"op": "cancel", "id": "1"}': "cancel: id must be a run id",
    b'{"op": "cancel", "id": true}': "cancel: id must be a run id",
    b'{"op": "cancel", "id": 1.5}': "cancel: id must be a run id",
    b'{"op": "cancel", "id": 99999999999999999999999}': "cancel: id must be a run id",
}


@pytest.mark.parametrize(("line", "message"), BAD_REQUESTS.items(),
                         ids=[line[:40].decode(errors="replace") for line in BAD_REQUESTS])
def test_malformed_requests_are_refused_with_a_reason(line, message):
    with pytest.raises(ProtocolError, match=None) as refused:
        decode_request(line)
    assert message in str(refused.value)
    assert len(str(refused.value)) < 200  # a huge payload is not echoed back


BAD_RUN_IDS = ["null", "7", "[1e300]", "[1.0]", '["x"]', "[[1]]", '[{"id": 1}]', "[true]",
               "[0]", "[-1]", "[9223372036854775808]"]


@pytest.mark.parametrize("ids", BAD_RUN_IDS)
def test_a_list_of_run_ids_is_checked(ids):
    with pytest.raises(ProtocolError, match="released: ids must be a list"):
        decode_report(f'{{"ev": "released", "ids": {ids}}}'.encode())


def test_a_huge_list_of_runs_is_refused():
    line = json.dumps({"ev": "released", "ids": list(range(1, MAX_IDS + 2))}).encode()
    with pytest.raises(ProtocolError, match="at most"):
        decode_report(line)


def test_an_empty_wake_up_is_a_wake_up():
    assert decode_request(b'{"op": "wake"}') == WakeRequest()


@pytest.mark.parametrize("ids", ["[]", "[1, 2]", *BAD_RUN_IDS])
def test_the_run_ids_of_an_older_client_s_wake_up_are_not_read(ids):
    assert decode_request(f'{{"op": "wake", "runs": {ids}}}'.encode()) == WakeRequest()


GOOD_OUTCOME = {"state": "failed", "exit_code": 1, "error": None, "cpu_user_s": 0.1,
                "cpu_system_s": 0.0, "peak_rss_kb": 10, "energy_j": None}


@pytest.mark.parametrize(("report", "message"), [
    ({"ev": "started", "id": 1}, "started: at must be a finite number"),
    ({"ev": "started", "id": 1, "at": -1}, "started: at must be a finite number"),
    ({"ev": "started", "id": 1, "at": "now"}, "started: at must be a finite number"),
    ({"ev": "step", "id": 1, "pgid": 0}, "step: pgid must be a process id"),
    ({"ev": "finished", "id": 1, "at": 1.0}, "finished: outcome must be an object"),
    ({"ev": "finished", "id": 1, "at": 1.0, "outcome": {**GOOD_OUTCOME, "state": "queued"}},
     "finished.outcome: state must be a run's end state"),
    ({"ev": "ran", "id": 1, "at": 1.0, "started_at": 0.5,
      "outcome": {**GOOD_OUTCOME, "peak_rss_kb": 1.5}},
     "ran.outcome: peak_rss_kb must be an integer"),
    ({"ev": "ran_rows", "runs": [[1, 0.5, 1.0, "failed", 1, None, 0.1, 0.0, 1.5, None, None]]},
     "ran_rows.runs[0]: peak_rss_kb must be an integer"),
    ({"ev": "ran_rows", "runs": [[1, 0.5, 1.0, "succeeded", 0, None, 0.1, 0.0, 1, None, None],
                                 [0, 0.5, 1.0, "succeeded", 0, None, 0.1, 0.0, 1, None, None]]},
     "ran_rows.runs[1]: id must be a run id"),
    ({"ev": "ran_rows", "runs": [[1, 0.5, 1.0, "queued", 0, None, 0.1, 0.0, 1, None, None]]},
     "ran_rows.runs[0]: state must be a run's end state"),
    ({"ev": "ran_rows", "runs": [[1, 0.5]]}, "ran_rows: runs[0] must be a list of 11 values"),
    ({"ev": "ran_rows", "runs": [{"id": 1}]}, "ran_rows: runs[0] must be a list of 11 values"),
    ({"ev": "ran_rows", "runs": {}}, "ran_rows: runs must be a list"),
    ({"ev": "released", "ids": [1, "2"]}, "released: ids must be a list of run ids"),
    ({"ev": "exploded"}, "unknown ev 'exploded'"),
])
def test_malformed_reports_are_refused(report, message):
    with pytest.raises(ProtocolError) as refused:
        decode_report(json.dumps(report).encode())
    assert message in str(refused.value)


def test_nan_and_infinity_are_not_times():
    for value in ("NaN", "Infinity", "-Infinity"):
        with pytest.raises(ProtocolError, match="finite"):
            decode_report(f'{{"ev": "started", "id": 1, "at": {value}}}'.encode())


def test_a_run_order_names_a_spec_for_each_of_its_runs():
    order = {"op": "run", "limits": {"timeout": 60, "nice": 0, "kill_grace": 5,
                                     "log_max_bytes": 100},
             "specs": {}, "runs": [[1, "gone", "/tmp/1.log"]]}
    with pytest.raises(ProtocolError, match="no spec for run 1's workflow 'gone'"):
        decode_order(json.dumps(order).encode())
    order["limits"]["timeout"] = None
    with pytest.raises(ProtocolError, match="run.limits: timeout must be a finite number"):
        decode_order(json.dumps(order).encode())


@pytest.mark.parametrize(("runs", "message"), [
    ([[1, "w", "/tmp/1.log"], [0, "w", "/tmp/0.log"]], "run.runs[1]: id must be a run id"),
    ([[1, "w", None]], "run.runs[0]: log_path must be a string"),
    ([[1, "w"]], "run: runs[0] must be a list of 3 values (id, workflow, log_path)"),
    ([{"id": 1, "workflow": "w", "log_path": "/tmp/1.log"}], "run: runs[0] must be a list"),
])
def test_each_run_of_a_run_order_is_checked(runs, message):
    order = {"op": "run", "limits": {"timeout": 60, "nice": 0, "kill_grace": 5,
                                     "log_max_bytes": 100},
             "specs": {"w": {"spec": {}, "source_file": None}}, "runs": runs}
    with pytest.raises(ProtocolError) as refused:
        decode_order(json.dumps(order).encode())
    assert message in str(refused.value)


def test_the_worker_process_imports_neither_the_storage_layer_nor_sqlite3():
    probe = ("import sys, easyflow_cli.runtime.worker; "
             "print(sorted(m for m in sys.modules if m == 'sqlite3' or m.startswith("
             "('easyflow_cli.storage', '_sqlite3'))))")
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                            check=True)
    assert result.stdout.strip() == "[]"
