import signal
import subprocess
import sys
import time

import pytest

from easyflow_cli.runtime import calls


@pytest.fixture
def kept_handler(monkeypatch):
    """The worker's way: the tick handler installed for good (undone after the test)."""
    previous = signal.getsignal(signal.SIGALRM)
    monkeypatch.setattr(calls, "_handler_kept", False)
    monkeypatch.setattr(calls, "_armed_until", 0.0)
    monkeypatch.setattr(calls.atexit, "register", lambda function: None)
    calls.keep_tick_handler()
    yield
    calls._disarm()
    signal.signal(signal.SIGALRM, previous)


def call(function, timeout: float = 60.0) -> int:
    return calls.call_step(function, (), deadline=time.monotonic() + timeout,
                           cancelled=lambda: False, output=lambda data: None)


def spin() -> None:
    while True:
        pass


def test_short_calls_in_a_row_share_one_armed_tick(kept_handler, monkeypatch):
    armed = []  # recorded, not armed: no tick comes to re-arm the timer
    monkeypatch.setattr(calls.signal, "setitimer", lambda which, seconds: armed.append(seconds))
    now = time.monotonic()
    monkeypatch.setattr(calls.time, "monotonic", lambda: now)  # all within the first tick
    assert [call(lambda: None) for _ in range(50)] == [0] * 50
    assert armed == [calls.FIRST_TICK_SECONDS]


def test_a_call_after_many_short_ones_still_times_out(kept_handler):
    for _ in range(200):
        call(lambda: None)
    with pytest.raises(calls.StepInterrupted, match="timeout"):
        call(spin, timeout=0.2)


def test_a_call_still_restores_the_handler_it_found_when_none_is_kept():
    previous = signal.getsignal(signal.SIGALRM)
    assert call(lambda: None) == 0
    assert signal.getsignal(signal.SIGALRM) == previous
    assert signal.getitimer(signal.ITIMER_REAL) == (0.0, 0.0)


def test_a_process_keeping_the_handler_exits_by_its_status_with_a_tick_armed():
    code = ("import time; from easyflow_cli.runtime import calls; calls.keep_tick_handler();"
            " calls.call_step(lambda: None, (), deadline=time.monotonic() + 60,"
            " cancelled=lambda: False, output=lambda data: None)")
    assert subprocess.run([sys.executable, "-c", code], timeout=60).returncode == 0
