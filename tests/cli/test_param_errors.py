"""A bad value in our words, whatever it holds: Click quotes it as Python writes a string, and we
read it back before showing it once, escaped and cut."""

from typer.testing import CliRunner

from easyflow_cli.cli.main import app


def usage_error(*args: str) -> str:
    result = CliRunner().invoke(app, list(args), prog_name="easyflow")
    assert result.exit_code == 2 and result.stdout == "", result.output
    assert result.stderr.count("\n") == 1, result.stderr
    return result.stderr.split(" (see `")[0]


def test_a_value_with_quotes_and_a_newline_is_shown_escaped_on_one_line():
    assert usage_error("run", "w", "--now", "--mode", "it's\n\"eco\"") == (
        "error: easyflow run: --mode: 'it\\'s\\n\"eco\"' is not a mode (real-time, balanced, eco)")
    assert usage_error("runs", "list", "--limit", "don't") == (
        "error: easyflow runs list: --limit: \"don't\" is not a whole number")


def test_a_huge_value_is_cut():
    said = usage_error("runs", "list", "--state", "x" * 300_000)
    assert said == ("error: easyflow runs list: --state: '" + "x" * 60 + "...' (300000 "
                    "characters) is not a run state (queued, running, succeeded, failed, "
                    "timed_out, cancelled)")
