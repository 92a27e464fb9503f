"""Property-based fuzzing of the workflow parser.

Whatever the input, `parse_workflow_text` (and `spec_from_dict`, which reads stored specs) either
returns a `WorkflowSpec` or raises `SpecErrors` whose every line is one printable line naming the
file. Nothing else may escape: no OverflowError, RecursionError, OSError, KeyError, ...
Runs are derandomized, so CI sees the same inputs every time.
"""

from __future__ import annotations

import tomllib
from collections import Counter
from datetime import UTC, timedelta, timezone

import pytest
import tomli_w
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from easyflow_cli.core.errors import EasyflowError, SpecErrors
from easyflow_cli.core.spec import WorkflowSpec, parse_workflow_text, spec_from_dict, to_toml

FILE = "fuzz.toml"

VALID = """\
name = "nightly-report"
description = "Build and mail the nightly report"
execution_mode = "eco"
deadline = 2026-12-01T09:00:00Z
cost_priority = "high"
timeout = "10m"
retries = 2
retry_backoff = "30s"
allow_overlap = false

[[steps]]
name = "fetch"
run = ["curl", "-fsS", "-o", "data.json", "https://example.com/data"]
env = { API_TOKEN = "secret", LANG = "C" }
cwd = "work"
timeout = "1m"

[[steps]]
name = "render"
run = "python3 render.py --out 'report.txt'"
continue_on_error = true

[[steps]]
name = "mail"
run = "mail -s report team@example.com < report.txt"
shell = true

[[schedules]]
cron = "0 2 * * 1-5"
timezone = "Europe/Berlin"

[[schedules]]
every = "1h30m"
mode = "balanced"
deadline_after = "2h"

[[schedules]]
at = "2026-12-24T18:00:00+01:00"
"""
VALID_TABLE = tomllib.loads(VALID)

# Characters TOML gives meaning to, and the words and values the parser looks for, so random
# text reaches past the first syntax error often enough to exercise the field checks.
TOML_ALPHABET = list('[]{}=",.\'\n\t #-_:+\\0123456789') + list("aeinrstuTZ")
TOKENS = ["name", "steps", "run", "shell", "env", "cwd", "timeout", "schedules", "cron", "every",
          "at", "timezone", "mode", "retries", "deadline", "deadline_after", "true", "false",
          '"eco"', '"5m"', '"0 2 * * *"', "[[steps]]", "[[schedules]]", "[steps]", '["true"]',
          "inf", "nan", "1e999", "-0", "0x7f", "1979-05-27T07:32:00Z", "\\u0000", "\u2028",
          "\U0001F600", "\x00", "\x1b", "\r\n", '"""', "'''", "9" * 30]

tried: Counter[str] = Counter()


@pytest.fixture(scope="module", autouse=True)
def report_inputs_tried():
    """How many inputs each property saw (shown with `pytest -s -n 0`)."""
    yield
    print(f"\nparser fuzzing: {sum(tried.values())} inputs: {dict(tried)}")

FUZZ = settings(deadline=None, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                       HealthCheck.filter_too_much])


def assert_parses_or_refuses_cleanly(text: str) -> None:
    try:
        spec = parse_workflow_text(text, FILE)
    except SpecErrors as exc:
        assert_clean_errors(exc)
        return
    assert isinstance(spec, WorkflowSpec)
    assert_export_round_trips(spec)


def assert_clean_errors(exc: SpecErrors) -> None:
    assert exc.exit_code == 2
    assert exc.errors
    for error in exc.errors:
        line = str(error)
        assert line.startswith(FILE), line
        assert "\n" not in line and line.isprintable(), line
        assert len(line) < 500, line


def assert_export_round_trips(spec: WorkflowSpec) -> None:
    """`workflow export` writes what `workflow add` reads back as the same workflow."""
    again = parse_workflow_text(to_toml(spec), spec.source_file)
    assert again.steps == spec.steps and again.schedules == spec.schedules
    assert again.name == spec.name and again.deadline == spec.deadline


# --------------------------------------------------------------------------- strategies

toml_ish_text = st.lists(
    st.one_of(st.sampled_from(TOKENS), st.text(TOML_ALPHABET, max_size=8),
              st.text(max_size=4)),
    max_size=40,
).map("".join)

scalars = st.one_of(
    st.none(), st.booleans(), st.integers(), st.integers(min_value=-(10**30), max_value=10**30),
    st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=30),
    st.sampled_from(["", "eco", "5m", "0s", "-5m", "1e999s", "0 2 * * *", "@daily", "UTC",
                     "../../etc/passwd", "Europe", "a\x00b", "x\n", "9" * 400 + "d",
                     "2026-02-30T09:00", "9999-12-31T23:59:59-01:00", "true"]),
    st.datetimes(timezones=st.sampled_from([None, UTC, timezone(timedelta(hours=-14)),
                                            timezone(timedelta(hours=14))])),
    st.dates(), st.times(),
)
toml_values = st.recursive(
    scalars.filter(lambda v: v is not None),
    lambda children: st.one_of(st.lists(children, max_size=4),
                               st.dictionaries(st.text(max_size=12), children, max_size=4)),
    max_leaves=6,
)


def _paths(value, prefix=()):
    """Every key path into a nested dict/list document."""
    yield prefix
    if isinstance(value, dict):
        for key, item in value.items():
            yield from _paths(item, (*prefix, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _paths(item, (*prefix, index))


VALID_PATHS = [p for p in _paths(VALID_TABLE) if p]


def _replaced(document, path, value):
    if not path:
        return value
    head, rest = path[0], path[1:]
    if isinstance(document, dict):
        return {**document, head: _replaced(document[head], rest, value)}
    copy = list(document)
    copy[head] = _replaced(document[head], rest, value)
    return copy


def _dumps(document) -> str | None:
    """The TOML text of `document`, or None when TOML cannot express it (None, nulls in keys)."""
    try:
        return tomli_w.dumps(document)
    except (TypeError, ValueError):
        return None


# --------------------------------------------------------------------------- properties


@settings(FUZZ, max_examples=500)
@given(toml_ish_text)
def test_arbitrary_toml_ish_text(text):
    tried["toml-ish text"] += 1
    assert_parses_or_refuses_cleanly(text)


@settings(FUZZ, max_examples=200)
@given(st.text(max_size=300))
def test_arbitrary_unicode_text(text):
    tried["unicode text"] += 1
    assert_parses_or_refuses_cleanly(text)


@settings(FUZZ, max_examples=500)
@given(st.data())
def test_mutated_valid_file(data):
    """Delete, replace or insert characters of a complete workflow file, a few times over."""
    text = VALID
    for _ in range(data.draw(st.integers(1, 4), label="mutations")):
        at = data.draw(st.integers(0, len(text)), label="at")
        kind = data.draw(st.sampled_from(["delete", "replace", "insert"]), label="kind")
        span = data.draw(st.integers(1, 12), label="span")
        piece = data.draw(st.one_of(st.sampled_from(TOKENS), st.text(TOML_ALPHABET, max_size=6),
                                    st.text(max_size=3)), label="piece")
        if kind == "delete":
            text = text[:at] + text[at + span:]
        elif kind == "replace":
            text = text[:at] + piece + text[at + span:]
        else:
            text = text[:at] + piece + text[at:]
    tried["mutated file"] += 1
    assert_parses_or_refuses_cleanly(text)


@settings(FUZZ, max_examples=400)
@given(st.sampled_from(VALID_PATHS), toml_values)
def test_valid_file_with_one_value_of_the_wrong_type(path, value):
    text = _dumps(_replaced(VALID_TABLE, path, value))
    if text is None:
        return
    tried["wrong-type value"] += 1
    assert_parses_or_refuses_cleanly(text)


@settings(FUZZ, max_examples=200)
@given(st.dictionaries(st.sampled_from([*VALID_TABLE, "bogus", ""]), toml_values, max_size=6))
def test_arbitrary_documents(document):
    text = _dumps(document)
    if text is None:
        return
    tried["arbitrary document"] += 1
    assert_parses_or_refuses_cleanly(text)


@settings(FUZZ, max_examples=200)
@given(st.dictionaries(st.sampled_from([*VALID_TABLE, "bogus"]),
                       st.one_of(scalars, toml_values), max_size=6))
def test_arbitrary_dicts_read_as_stored_specs(document):
    """`spec_from_dict` reads the stored form; a damaged row must be a SpecError too."""
    tried["stored dict"] += 1
    try:
        assert isinstance(spec_from_dict(document, source_file=FILE), WorkflowSpec)
    except EasyflowError as exc:
        assert isinstance(exc, SpecErrors)
        assert_clean_errors(exc)


def test_the_valid_file_is_valid():
    spec = parse_workflow_text(VALID, FILE)
    assert len(spec.steps) == 3 and len(spec.schedules) == 3
    assert_export_round_trips(spec)

