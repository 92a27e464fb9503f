"""A command group whose commands are imported when one is used, not when the group is made.

Every `easyflow` process would otherwise import all the command modules (and what they
import) to run one. The root group holds a table instead: each command's name, where its
Typer app or function lives, and its one-line help, so that `easyflow --help` lists them all
without importing any.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator, Mapping, MutableMapping
from dataclasses import dataclass
from typing import Any, ClassVar

import typer
from typer.core import TyperCommand, TyperGroup

from easyflow_cli.cli.group import ClickContext, EasyflowGroup

# Typer's Click command type (Typer carries its own copy of Click, not exported by name).
Command = Any


@dataclass(frozen=True)
class LazyCommand:
    """Where a command is (`"package.module:attribute"`, a Typer app or a command function),
    and its help up to the end of its first sentence, as `--help` lists it."""

    target: str
    summary: str

    def load(self) -> Any:
        module, _, attribute = self.target.partition(":")
        return getattr(importlib.import_module(module), attribute)


class LazyCommands(MutableMapping[str, Command]):
    """A group's commands by name, in the table's order, each built on first access."""

    def __init__(self, table: Mapping[str, LazyCommand], rich_markup_mode: Any) -> None:
        self._table = table
        self._rich_markup_mode = rich_markup_mode
        self._built: dict[str, Command] = {}

    def __getitem__(self, name: str) -> Command:
        if name not in self._built:
            if name not in self._table:
                raise KeyError(name)
            self._built[name] = typer_command(name, self._table[name].load(),
                                              self._rich_markup_mode)
        return self._built[name]

    def __setitem__(self, name: str, command: Command) -> None:
        self._built[name] = command

    def __delitem__(self, name: str) -> None:
        raise TypeError("the commands of a lazy group are fixed by its table")

    def __iter__(self) -> Iterator[str]:
        yield from self._table
        yield from (name for name in self._built if name not in self._table)

    def __len__(self) -> int:
        return len(self._table.keys() | self._built.keys())

    def listed(self, name: str) -> Command:
        """The command, if it was built; else a stand-in that carries only its summary."""
        if name in self._built:
            return self._built[name]
        return TyperCommand(name=name, help=self._table[name].summary)


class LazyGroup(EasyflowGroup):
    """An `EasyflowGroup` whose commands are those of `table`, imported when first used."""

    table: ClassVar[Mapping[str, LazyCommand]] = {}

    def __init__(self, **attrs: Any) -> None:
        eager = attrs.pop("commands", None) or {}
        super().__init__(**attrs)
        self.commands = LazyCommands(self.table, self.rich_markup_mode)
        for name, command in dict(eager).items():
            self.commands[name] = command

    def list_commands(self, ctx: ClickContext) -> list[str]:
        return list(self.commands)

    def format_commands(self, ctx: ClickContext, formatter: Any) -> None:
        """The commands and their one-line help, as Typer lists them, none imported for it."""
        assert isinstance(self.commands, LazyCommands)
        stand_ins = {name: self.commands.listed(name) for name in self.commands}
        TyperGroup(name=self.name, commands=stand_ins).format_commands(ctx, formatter)


def typer_command(name: str, target: Any, rich_markup_mode: Any) -> Command:
    """The Click command Typer makes of `target`, a Typer app or a command function, added to
    a group as `name` (as `add_typer` or `command` would add it)."""
    holder = typer.Typer(rich_markup_mode=rich_markup_mode)
    if isinstance(target, typer.Typer):
        holder.add_typer(target, name=name)
    else:
        holder.command(name)(target)
    return typer.main.get_group(holder).commands[name]
