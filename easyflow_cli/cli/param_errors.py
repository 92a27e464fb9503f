"""A bad option value in our words: Typer validates values with pydantic, whose messages
("Value error, 'turbo' is not one of ...", "Input should be a valid integer") name neither the
option's meaning nor what to give instead.
"""

from __future__ import annotations

from enum import Enum
from typing import Any

from easyflow_cli.core.errors import SHOWN_CHARS, printable, shown
from easyflow_cli.core.model import Mode, RunState

# What a value of each enum is called in a sentence ("'turbo' is not a mode").
ENUM_NOUNS: dict[type[Enum], str] = {Mode: "a mode", RunState: "a run state"}
RANGE_ERRORS = {"greater_than_equal", "less_than_equal", "greater_than", "less_than"}
NUMBER_ERRORS = {"int_parsing", "int_from_float", "int_type", "float_parsing", "float_type"}


def in_our_words(exc: BaseException) -> str | None:
    """One line saying which value of which option is wrong and what it may be; None when
    `exc` is no bad value of an option or argument (Click's own usage errors read well)."""
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
