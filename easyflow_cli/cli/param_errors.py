"""A usage error in our words, naming the command: Typer validates values with pydantic, whose
messages ("Value error, 'turbo' is not one of ...", "Input should be a valid integer") name
neither the option's meaning nor what to give instead, and Click's parser speaks its own way
("No such option: --foo", "Option '--at' requires an argument.", "Missing argument 'name'.").
"""

from __future__ import annotations

import re
from enum import Enum
from typing import Any

from easyflow_cli.core.errors import SHOWN_CHARS, printable, shown
from easyflow_cli.core.model import Mode, RunState

# What a value of each enum is called in a sentence ("'turbo' is not a mode").
ENUM_NOUNS: dict[type[Enum], str] = {Mode: "a mode", RunState: "a run state"}
# What an argument named so is, where its name alone would not say ("missing the names").
ARGUMENT_NOUNS = {"names": "workflow name", "name": "workflow name", "workflow": "workflow name",
                  "paths": "workflow files or folders", "target": "schedule id or workflow name"}
RANGE_ERRORS = {"greater_than_equal", "less_than_equal", "greater_than", "less_than"}
NUMBER_ERRORS = {"int_parsing", "int_from_float", "int_type", "float_parsing", "float_type"}


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
    errors = getattr(exc.__cause__, "errors", None)
    descriptor = getattr(param, "type_descriptor", None)
    if param is None or descriptor is None or not callable(errors) or not errors():
        return None
    error = errors()[0]
    return _sentence(_label(param), error.get("type", ""), error.get("input"),
                     descriptor.annotation, param)


def _sentence(label: str, kind: str, value: Any, annotation: Any, param: Any) -> str | None:
    if isinstance(annotation, type) and issubclass(annotation, Enum):
        noun = ENUM_NOUNS.get(annotation, "one of these")
        return f"{label}: {shown(value)} is not {noun} ({', '.join(_choices(annotation))})"
    if kind in RANGE_ERRORS:
        return f"{label}: {_number(value)} is out of range; give {_bounds(param)}"
    if kind in NUMBER_ERRORS:
        whole = annotation is int
        return f"{label}: {shown(value)} is not {'a whole number' if whole else 'a number'}"
    return None


def _number(value: Any) -> str:
    """A number as typed, without quotes (it was read as one), cut if absurdly long."""
    text = printable(str(value))
    return text if len(text) <= SHOWN_CHARS else f"{text[:SHOWN_CHARS]}..."


def _label(param: Any) -> str:
    """`--limit` for an option, `run id` for an argument."""
    options = [o for o in getattr(param, "opts", []) if o.startswith("--")]
    return options[0] if options else str(param.name).replace("_", " ")


def _choices(enum: type[Enum]) -> list[str]:
    return [str(member.value) for member in enum]


def _bounds(param: Any) -> str:
    low, high = getattr(param, "min", None), getattr(param, "max", None)
    if low is not None and high is not None:
        return f"{low:,} to {high:,}"
    return f"at least {low:,}" if low is not None else f"at most {high:,}"
