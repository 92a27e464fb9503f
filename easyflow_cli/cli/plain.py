"""Plain output for the CLI's fastest paths: no Typer and no Rich, which cost more to import
than `easyflow --help` or `run --now --no-wait` may take in all.

Data goes to stdout, talk to stderr, so `--json` output stays clean.
"""

from __future__ import annotations

import json
import sys
from typing import Any


def say(text: str) -> None:
    """A plain line of talk on stderr."""
    sys.stderr.write(text + "\n")
    sys.stderr.flush()


def print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, default=str) + "\n")


def print_line(text: object) -> None:
    """One line of data on stdout, flushed, as `typer.echo` writes it."""
    sys.stdout.write(f"{text}\n")
    sys.stdout.flush()
