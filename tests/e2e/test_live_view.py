"""The live view of `run --now` on a real terminal: the run's output scrolls above one status
line, and what is left on the screen is the output itself, each line whole."""

from __future__ import annotations

import re
import sys

import pytest

from tests.conftest import easyflow_command
from tests.terminal import run_in_terminal

pytest_plugins = ["tests.daemon_harness"]
pytest.register_assert_rewrite("tests.daemon_harness")
from tests.daemon_harness import DaemonHarness  # noqa: E402

pytestmark = pytest.mark.e2e

# Rich's spinners are braille dots; any on the final screen is a fragment of an old status line.
SPINNER = re.compile("[\u2800-\u28ff]")
LINES = [f"line {i}: {'x' * (10 * i)} ünïcode · done" for i in range(6)]
# Slow enough that the status line is redrawn several times between two lines of output.
PRINTER = ("import sys, time\n"
           f"for line in {LINES!r}:\n"
           "    print(line, flush=True); time.sleep(0.25)\n"
           "sys.stdout.write('no newline at the end')\n")


@pytest.fixture
def ticker(daemon: DaemonHarness) -> DaemonHarness:
    daemon.write_config("""
        [pools.eco]
        off_peak = ""
        """)
    script = daemon.root / "printer.py"
    script.write_text(PRINTER)
    daemon.add_workflow("ticker", [sys.executable, str(script)])
    daemon.start()
    return daemon


@pytest.mark.parametrize("extra", [[], ["--json"]], ids=["stdout", "json-on-stderr"])
def test_output_scrolls_above_one_status_line(ticker: DaemonHarness, extra: list[str]) -> None:
    session = run_in_terminal([*easyflow_command(), "run", "ticker", "--now", *extra],
                              ticker.env(), rows=100)
    assert session.exit_code == 0, session.text
    assert SPINNER.search(session.text) is None, session.text
    assert "running in the real-time pool" not in session.text
    for line in [*LINES, "no newline at the end"]:
        assert line in session.screen, f"{line!r} not a whole line of:\n{session.text}"
    # The status line was drawn while the run went on (else this proves nothing).
    assert SPINNER.search(session.output.decode(errors="replace"))


def test_piped_output_is_the_log_byte_for_byte(ticker: DaemonHarness) -> None:
    result = ticker.cli("run", "ticker", "--now")
    printed = result.stdout.splitlines()
    assert printed[0].startswith("[easyflow] step 'step1': ")
    assert printed[1:] == [*LINES, "no newline at the end"]
    assert SPINNER.search(result.stdout + result.stderr) is None
