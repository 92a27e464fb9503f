"""The root group's commands, imported only when used: what `easyflow --help` lists without
importing them is what the commands themselves say."""

import pytest
import typer
from typer.testing import CliRunner

from easyflow_cli.cli.lazy_group import LazyCommand, LazyCommands
from easyflow_cli.cli.main import COMMANDS, app


def root_group():
    return typer.main.get_command(app)


def test_each_summary_is_its_commands_help_to_the_end_of_its_first_sentence():
    group = root_group()
    for name, entry in COMMANDS.items():
        assert entry.summary == group.commands[name].get_short_help_str(limit=10**6), name


@pytest.mark.parametrize("width", [50, 80, 200])
def test_root_help_reads_the_same_before_and_after_every_command_is_loaded(width):
    group = root_group()
    before = group.get_help(group.make_context("easyflow", [], terminal_width=width,
                                               resilient_parsing=True))
    assert list(group.commands.values())  # builds every command
    after = group.get_help(group.make_context("easyflow", [], terminal_width=width,
                                              resilient_parsing=True))
    assert before == after
    assert all(f"  {name} " in before for name in COMMANDS)


def test_root_help_lists_every_command_in_the_tables_order():
    lines = CliRunner().invoke(app, ["--help"]).output.split("Commands:\n")[1].splitlines()
    assert [line.split()[0] for line in lines if line.strip()] == list(COMMANDS)


def test_a_command_is_built_only_when_asked_for():
    commands = LazyCommands({"why": COMMANDS["why"], "runs": COMMANDS["runs"]}, None)
    assert list(commands) == ["why", "runs"] and len(commands) == 2
    assert commands.listed("why").params == []  # a stand-in: only its summary
    why = commands["why"]
    assert [p.name for p in why.params] == ["run_id", "as_json"]
    assert commands["why"] is why and commands.listed("why") is why
    assert set(commands["runs"].commands) >= {"list", "show"}


def test_an_unknown_command_is_none_and_a_wrong_target_fails_loudly():
    commands = LazyCommands({"nosuch": LazyCommand("easyflow_cli.cli.why:nosuch", "x.")}, None)
    assert commands.get("other") is None
    with pytest.raises(AttributeError):
        commands["nosuch"]


def test_an_added_command_is_listed_after_the_table():
    commands = LazyCommands({"why": COMMANDS["why"]}, None)
    commands["extra"] = typer.core.TyperCommand(name="extra")
    assert list(commands) == ["why", "extra"] and len(commands) == 2
    assert commands.listed("extra").name == "extra"
