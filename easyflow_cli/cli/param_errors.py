"""A usage error in our words, naming the command: Click's types say what a bad value is not
("'turbo' is not one of 'real-time', ...", "'x' is not a valid int.", "0 is not in the range
1<=x<=1000000.") without the option's meaning or what to give instead, and its parser speaks its
own way ("No such option: --foo", "Option '--at' requires an argument.", "Missing argument
'name'.").
"""

from __future__ import annotations

import ast
import re
from collections.abc import Sequence
from enum import Enum
from typing import Any

from easyflow_cli.core.errors import SHOWN_CHARS, printable, shown
from easyflow_cli.core.model import Mode, RunState

# What a value of each enum is called in a sentence ("'turbo' is not a mode").
ENUM_NOUNS: dict[type[Enum], str] = {Mode: "a mode", RunState: "a run state"}
# What an argument named so is, where its name alone would not say ("missing the names").
ARGUMENT_NOUNS = {"names": "workflow name", "name": "workflow name", "workflow": "workflow name",
                  "paths": "workflow files or folders", "target": "schedule id or workflow name"}
# A bad value as Click's types word it: the value quoted (as Python writes a string) or, out of
# range, as the number it was read as; then what it is not.
BAD_VALUE = re.compile(r"(?P<value>'(?:[^'\\]|\\.)*'|\"(?:[^\"\\]|\\.)*\"|\S+) is not "
                       r"(?P<kind>one of|in the range|a valid int|a valid float)\b")
NUMBER_KINDS = {"a valid int": "a whole number", "a valid float": "a number"}


# What Click's parser raises without its context (so without the option or argument as an
# object), recognised by Click's fixed wording, each with ours.
PARSER_MESSAGES = (
    (re.compile(r"Option '(?P<option>[^']+)' requires an argument\.?"),
     "{option} needs a value"),
    (re.compile(r"Option '(?P<option>[^']+)' requires (?P<count>\d+) arguments\.?"),
     "{option} needs {count} values"),
    (re.compile(r"Option '(?P<option>[^']+)' does not take a value\.?"),
     "{option} takes no value"),
    (re.compile(r"Got unexpected extra argument\(?s?\)? \((?P<extra>.*)\)"),
     "unexpected argument {extra!r}"),
    (re.compile(r"No such command '(?P<name>[^']+)'\.(?: Did you mean (?P<close>.+)\?)?"),
     "no command {name!r}{close}"),
)


def usage_in_our_words(exc: BaseException) -> str:
    """One line for any usage error: a bad value's, or the parser's (an unknown option, a
    missing value or argument, an extra argument, an unknown command)."""
    bad_value = in_our_words(exc)
    if bad_value is not None:
        return bad_value
    if hasattr(exc, "possibilities") and hasattr(exc, "option_name"):  # an unknown option
        close = ", ".join(exc.possibilities or ())
        return f"no option {exc.option_name}" + (f" (did you mean {close}?)" if close else "")
    param = getattr(exc, "param", None)
    if hasattr(exc, "param_type") and param is not None:  # a missing option or argument
        return _missing(param)
    return _parser_words(getattr(exc, "message", str(exc)))


def _parser_words(message: str) -> str:
    """Ours for one of Click's parser messages; the message itself if it is none of them."""
    for pattern, ours in PARSER_MESSAGES:
        found = pattern.fullmatch(message)
        if found:
            words = found.groupdict()
            words["close"] = f" (did you mean {words['close']}?)" if words.get("close") else ""
            return ours.format(**words)
    return message


def _missing(param: Any) -> str:
    if getattr(param, "param_type_name", "") == "argument":
        name = str(param.name)
        return f"missing the {ARGUMENT_NOUNS.get(name, name.replace('_', ' '))}"
    return f"{_label(param)} is required"


def in_our_words(exc: BaseException) -> str | None:
    """One line saying which value of which option is wrong and what it may be; None when
    `exc` is no bad value of an option or argument."""
    param = getattr(exc, "param", None)
    found = BAD_VALUE.match(getattr(exc, "message", ""))
    if param is None or found is None:
        return None
    label, value = _label(param), found["value"]
    choices = getattr(param.type, "choices", None)
    if found["kind"] == "one of" and choices:
        return f"{label}: {shown(_typed(value))} is not {_noun(choices)} ({_listed(choices)})"
    if found["kind"] == "in the range":
        return f"{label}: {_number(value)} is out of range; give {_bounds(param.type)}"
    if found["kind"] in NUMBER_KINDS:
        return f"{label}: {shown(_typed(value))} is not {NUMBER_KINDS[found['kind']]}"
    return None


def _typed(value: str) -> str:
    """The value a user typed, from the quoted form Click's message gives it (as it is, if a
    message of a callback's own did not quote it)."""
    try:
        return str(ast.literal_eval(value))
    except (ValueError, SyntaxError):
        return value


def _noun(choices: Sequence[Any]) -> str:
    """What the enum whose values are `choices` is called (Typer's choices are its values)."""
    nouns = {tuple(str(member.value) for member in enum): noun
             for enum, noun in ENUM_NOUNS.items()}
    return nouns.get(tuple(str(choice) for choice in choices), "one of these")


def _listed(choices: Sequence[Any]) -> str:
    return ", ".join(str(choice) for choice in choices)


def _number(value: Any) -> str:
    """A number as typed, without quotes (it was read as one), cut if absurdly long."""
    text = printable(str(value))
    return text if len(text) <= SHOWN_CHARS else f"{text[:SHOWN_CHARS]}..."


def _label(param: Any) -> str:
    """`--limit` for an option, `run id` for an argument."""
    options = [o for o in getattr(param, "opts", []) if o.startswith("--")]
    return options[0] if options else str(param.name).replace("_", " ")


def _bounds(number_type: Any) -> str:
    low, high = getattr(number_type, "min", None), getattr(number_type, "max", None)
    if low is not None and high is not None:
        return f"{low:,} to {high:,}"
    return f"at least {low:,}" if low is not None else f"at most {high:,}"
