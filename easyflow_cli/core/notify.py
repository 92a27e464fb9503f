"""`[notify]`: who is told when a workflow fails, recovers, is late or unusually slow or fast.

A workflow file's `[notify]` table overlays the defaults of `easyflow.toml`'s key by key; the
result, with the workflow's retries, is its `NoticeRule`. Read through the same `Checker` as
every other key, so a mistake names its file, line and field.
"""

from __future__ import annotations

import functools
import shlex
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, fields, replace
from enum import StrEnum
from typing import Any

from easyflow_cli.core.durations import format_duration
from easyflow_cli.core.errors import shown
from easyflow_cli.core.model import Mode
from easyflow_cli.core.toml_check import NUL_MESSAGE, Checker, type_name

NOTIFY_KEYS = ("on", "command", "webhook", "webhook_secret_file", "email", "smtp", "late_after",
               "slow_factor")
SMTP_KEYS = ("host", "port", "starttls", "user", "password_file")
SLOW_FACTOR = 3.0
SMTP_PORT = 587


class Event(StrEnum):
    FAILURE = "failure"  # ended failed, timed out or cancelled after its last retry
    RECOVERY = "recovery"  # the first success after a failure
    LATE = "late"  # missed its deadline, or a scheduled run did not start in time
    SLOW = "slow"  # far slower (or faster) than its learned durations
    TEST = "test"  # `easyflow notify test`: never written by a run


WATCHED = (Event.FAILURE, Event.RECOVERY, Event.LATE, Event.SLOW)
DEFAULT_ON = (Event.FAILURE, Event.RECOVERY)


class DeliveryState(StrEnum):
    PENDING = "pending"  # not delivered yet: tried again after a back-off
    DELIVERED = "delivered"
    FAILED = "failed"  # given up after every retry


class Channel(StrEnum):
    COMMAND = "command"
    WEBHOOK = "webhook"
    EMAIL = "email"


@dataclass(frozen=True)
class SmtpSpec:
    host: str
    port: int = SMTP_PORT
    starttls: bool = True
    user: str | None = None
    password_file: str | None = None


@dataclass(frozen=True)
class NotifySpec:
    """A `[notify]` table as written: None where a key is left out (so the defaults show)."""

    on: tuple[Event, ...] | None = None
    command: tuple[str, ...] | None = None
    webhook: str | None = None
    webhook_secret_file: str | None = None
    email: tuple[str, ...] | None = None
    smtp: SmtpSpec | None = None
    late_after: float | None = None
    slow_factor: float | None = None

    def over(self, defaults: NotifySpec) -> NotifySpec:
        """This table's keys, the defaults' where this one leaves a key out."""
        mine = {f.name: getattr(self, f.name) for f in fields(self)}
        return replace(defaults, **{k: v for k, v in mine.items() if v is not None})


@dataclass(frozen=True)
class NoticeRule:
    """What a workflow's run ends are watched for, and where the events go."""

    on: frozenset[Event]
    channels: tuple[Channel, ...]
    spec: NotifySpec
    retries: int = 0  # the attempts after which a failure is final
    late_after: float | None = None  # None: its pool's timeout
    slow_factor: float = SLOW_FACTOR

    def watches(self, event: Event) -> bool:
        return event in self.on


def rule_of(own: NotifySpec | None, defaults: NotifySpec, retries: int) -> NoticeRule | None:
    """The rule for a workflow, or None when it has no channel to tell (nothing is recorded)."""
    spec = (own or NotifySpec()).over(defaults)
    channels = tuple(c for c, value in ((Channel.COMMAND, spec.command),
                                        (Channel.WEBHOOK, spec.webhook),
                                        (Channel.EMAIL, spec.email)) if value)
    if not channels:
        return None
    on = spec.on if spec.on is not None else DEFAULT_ON
    return NoticeRule(frozenset(on), channels, spec, retries, spec.late_after,
                      spec.slow_factor or SLOW_FACTOR)


@dataclass(frozen=True, eq=False)  # compared and hashed by identity: see _watching
class NoticeBook:
    """Every workflow's rule (those with a channel), and the pools' timeouts: a scheduled run
    is late once it has waited its `late_after`, by default its pool's timeout."""

    rules: Mapping[str, NoticeRule]
    pool_timeouts: Mapping[Mode, float]

    @classmethod
    def build(cls, defaults: NotifySpec, pool_timeouts: Mapping[Mode, float],
              workflows: Iterable[tuple[str, NotifySpec | None, int]]) -> NoticeBook:
        """From the config's defaults and each workflow's (name, own [notify], retries)."""
        rules = {name: rule_of(own, defaults, retries) for name, own, retries in workflows}
        return cls({name: rule for name, rule in rules.items() if rule is not None},
                   dict(pool_timeouts))

    def rule(self, workflow: str) -> NoticeRule | None:
        return self.rules.get(workflow)

    def late_after(self, rule: NoticeRule, mode: Mode) -> float:
        return rule.late_after if rule.late_after is not None else self.pool_timeouts[mode]

    def watching(self, event: Event) -> list[str]:
        return _watching(self, event)


@functools.cache
def _watching(book: NoticeBook, event: Event) -> list[str]:
    # Cached per book (a book is made once per daemon start or reload): the daemon asks on
    # every wake-up that queued runs.
    return sorted(name for name, rule in book.rules.items() if rule.watches(event))


# --------------------------------------------------------------------------- reading


def _table(check: Checker, data: Mapping[str, Any], key: str, path: tuple,
           known: tuple[str, ...]) -> tuple[dict, tuple] | None:
    """The sub-table `key` of `data` and its path, its keys checked; None when it is absent
    or not a table (then said)."""
    if key not in data:
        return None
    table, here = data[key], path + (key,)
    if not isinstance(table, dict):
        name = ".".join(str(part) for part in here if isinstance(part, str))
        check.fail(here, f"must be a table ([{name}]), got {type_name(table)}")
        return None
    check.unknown_keys(table, known, here)
    return table, here


def check_notify(check: Checker, data: Mapping[str, Any], path: tuple) -> NotifySpec | None:
    """The `[notify]` table of a workflow file or the config, if it has one."""
    found = _table(check, data, "notify", path, NOTIFY_KEYS)
    if found is None:
        return None
    table, here = found
    return NotifySpec(
        on=_events(check, table, here), command=_command(check, table, here),
        webhook=_webhook(check, table, here),
        webhook_secret_file=check.string(table, "webhook_secret_file", here),
        email=_addresses(check, table, here), smtp=_smtp(check, table, here),
        late_after=check.duration(table, "late_after", here),
        slow_factor=_factor(check, table, here))


def _events(check: Checker, table: dict, path: tuple) -> tuple[Event, ...] | None:
    if "on" not in table:
        return None
    value = table["on"]
    names = [e.value for e in WATCHED]
    allowed = ", ".join(f'"{n}"' for n in names)
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        check.fail(path + ("on",), f"must be a list of event names ({allowed})")
        return None
    unknown = [v for v in value if v not in names]
    if unknown:
        check.fail(path + ("on",), f"unknown event {shown(unknown[0])}: use {allowed}")
        return None
    return tuple(Event(v) for v in dict.fromkeys(value))


def _command(check: Checker, table: dict, path: tuple) -> tuple[str, ...] | None:
    if "command" not in table:
        return None
    value = table["command"]
    here = path + ("command",)
    if isinstance(value, str):
        try:
            value = shlex.split(value)
        except ValueError as exc:
            check.fail(here, f"cannot be split into arguments: {exc}")
            return None
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        check.fail(here, f"must be an argv list like [\"/usr/local/bin/page\"], got "
                         f"{type_name(value)}")
        return None
    if not value or not value[0]:
        check.fail(here, "must name a program to run")
        return None
    if any("\0" in v for v in value):
        check.fail(here, NUL_MESSAGE)
        return None
    return tuple(value)


def _webhook(check: Checker, table: dict, path: tuple) -> str | None:
    url = check.string(table, "webhook", path)
    if url is None:
        return None
    from urllib.parse import urlsplit  # here: only a file with a webhook needs it

    try:
        parts = urlsplit(url)
        ok = parts.scheme in ("http", "https") and bool(parts.hostname) and url == url.strip()
    except ValueError:
        ok = False
    if not ok:
        check.fail(path + ("webhook",), f"must be an http:// or https:// URL, got {shown(url)}")
        return None
    return url


def _addresses(check: Checker, table: dict, path: tuple) -> tuple[str, ...] | None:
    if "email" not in table:
        return None
    value = table["email"]
    if isinstance(value, str):
        value = [value]
    here = path + ("email",)
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value) or not value:
        check.fail(here, "must be a list of e-mail addresses like [\"ops@example.com\"]")
        return None
    bad = [v for v in value if not _looks_like_address(v)]
    if bad:
        check.fail(here, f"{shown(bad[0])} is not an e-mail address")
        return None
    return tuple(value)


def _looks_like_address(text: str) -> bool:
    local, at, domain = text.partition("@")
    return bool(at and local and domain) and text.isprintable() and not any(
        c.isspace() or c in "<>,;" for c in text)


def _smtp(check: Checker, table: dict, path: tuple) -> SmtpSpec | None:
    found = _table(check, table, "smtp", path, SMTP_KEYS)
    if found is None:
        return None
    smtp, here = found
    host = check.string(smtp, "host", here, required=True)
    port = smtp.get("port", SMTP_PORT)
    if isinstance(port, bool) or not isinstance(port, int) or not 0 < port < 65536:
        check.fail(here + ("port",), f"must be a port number from 1 to 65535, got {shown(port)}")
        port = SMTP_PORT
    starttls = check.boolean(smtp, "starttls", here) if "starttls" in smtp else True
    if host is None:
        return None
    return SmtpSpec(host, port, starttls, check.string(smtp, "user", here),
                    check.string(smtp, "password_file", here))


def _factor(check: Checker, table: dict, path: tuple) -> float | None:
    if "slow_factor" not in table:
        return None
    value = table["slow_factor"]
    if isinstance(value, bool) or not isinstance(value, int | float) or not 1 < value <= 1000:
        check.fail(path + ("slow_factor",), f"must be a number above 1 (and at most 1000), got "
                                            f"{shown(value)}")
        return None
    return float(value)


# --------------------------------------------------------------------------- writing back


def notify_to_dict(spec: NotifySpec) -> dict[str, Any]:
    """The canonical TOML-shaped form `check_notify` reads back to the same spec."""
    out: dict[str, Any] = {}
    if spec.on is not None:
        out["on"] = [e.value for e in spec.on]
    _put(out, "command", spec.command)
    _put(out, "webhook", spec.webhook)
    _put(out, "webhook_secret_file", spec.webhook_secret_file)
    _put(out, "email", spec.email)
    if spec.smtp is not None:
        smtp = {"host": spec.smtp.host, "port": spec.smtp.port, "starttls": spec.smtp.starttls}
        _put(smtp, "user", spec.smtp.user)
        _put(smtp, "password_file", spec.smtp.password_file)
        out["smtp"] = smtp
    if spec.late_after is not None:
        out["late_after"] = format_duration(spec.late_after)
    if spec.slow_factor is not None:
        out["slow_factor"] = spec.slow_factor
    return out


def _put(out: dict[str, Any], key: str, value: str | Iterable[str] | None) -> None:
    if value is not None:
        out[key] = value if isinstance(value, str) else list(value)
