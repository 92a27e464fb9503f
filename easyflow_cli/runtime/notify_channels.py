"""Sending one event through one channel: a command (the event's JSON on its stdin), a webhook
(an HTTP POST of the same JSON, signed when a secret is set) or e-mail (sendmail, or SMTP).

Standard library only, and every wait bounded: a channel that hangs costs its timeout, once.
Each sender returns what the channel answered, or raises `DeliveryFailed` saying why not.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import shutil
import subprocess
from email.message import EmailMessage
from typing import Any

from easyflow_cli.core.errors import printable
from easyflow_cli.core.notify import Channel, NotifySpec, SmtpSpec
from easyflow_cli.core.trust import UntrustedPath, check_secret_file

COMMAND_TIMEOUT_S = 30.0
WEBHOOK_TIMEOUT_S = 60.0  # a receiver that takes 30 s to answer still gets through
SMTP_TIMEOUT_S = 30.0
LOG_TAIL_LINES = 20
LOG_TAIL_BYTES = 64 * 1024
SIGNATURE_HEADER = "X-Easyflow-Signature"
SENDMAIL_PATHS = ("/usr/sbin/sendmail", "/usr/lib/sendmail")


class DeliveryFailed(Exception):
    """The channel did not take the event; the message says why, in one line."""


def send(channel: Channel, spec: NotifySpec, event: dict[str, Any]) -> str:
    """Deliver `event` through `channel` as `spec` configures it; what the channel answered."""
    try:
        if channel is Channel.COMMAND:
            return send_command(spec.command or (), event)
        if channel is Channel.WEBHOOK:
            return send_webhook(spec.webhook or "", event, spec.webhook_secret_file)
        return send_email(spec.email or (), event, spec.smtp)
    except DeliveryFailed:
        raise
    except OSError as exc:  # what each library may raise past its own errors
        raise DeliveryFailed(printable(str(exc)) or type(exc).__name__) from None


def body_of(event: dict[str, Any]) -> bytes:
    return json.dumps(event, sort_keys=True).encode()


# ------------------------------------------------------------------ command


def send_command(argv: tuple[str, ...] | list[str], event: dict[str, Any]) -> str:
    try:
        done = subprocess.run(list(argv), input=body_of(event), capture_output=True,
                              timeout=COMMAND_TIMEOUT_S, check=False, start_new_session=True)
    except subprocess.TimeoutExpired:
        raise DeliveryFailed(f"{argv[0]} did not finish within {COMMAND_TIMEOUT_S:g}s") from None
    except OSError as exc:
        raise DeliveryFailed(f"cannot run {argv[0]}: {exc.strerror or exc}") from None
    if done.returncode != 0:
        said = _last_line(done.stderr) or _last_line(done.stdout)
        raise DeliveryFailed(f"{argv[0]} exited {done.returncode}" + (f": {said}" if said else ""))
    return f"exit 0{': ' + _last_line(done.stdout) if done.stdout.strip() else ''}"


def _last_line(output: bytes) -> str:
    lines = output.decode(errors="replace").strip().splitlines()
    return printable(lines[-1][:200]) if lines else ""


# ------------------------------------------------------------------ webhook


def send_webhook(url: str, event: dict[str, Any], secret_file: str | None) -> str:
    import urllib.error
    import urllib.request

    body = body_of(event)
    headers = {"Content-Type": "application/json", "User-Agent": "easyflow",
               "X-Easyflow-Event": str(event.get("event")),
               "X-Easyflow-Event-Id": str(event.get("event_id"))}
    if secret_file:
        headers[SIGNATURE_HEADER] = signature(read_secret(secret_file), body)
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=WEBHOOK_TIMEOUT_S) as answer:
            return f"HTTP {answer.status}"
    except urllib.error.HTTPError as exc:
        raise DeliveryFailed(f"HTTP {exc.code} {printable(str(exc.reason))}") from None
    except urllib.error.URLError as exc:
        raise DeliveryFailed(f"cannot reach {url}: {printable(str(exc.reason))}") from None
    except TimeoutError:
        raise DeliveryFailed(f"{url} did not answer within {WEBHOOK_TIMEOUT_S:g}s") from None


def signature(secret: bytes, body: bytes) -> str:
    """HMAC-SHA256 of the body, as GitHub's webhooks sign theirs: `sha256=<hex>`."""
    return "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest()


def read_secret(path: str) -> bytes:
    """A secret file's content (its last newline dropped); as root, only a file no one but
    root can read or change."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW)
    except OSError as exc:
        raise DeliveryFailed(f"cannot read secret file {path}: {exc.strerror}") from None
    with os.fdopen(fd, "rb") as file:
        try:
            check_secret_file(path, os.fstat(file.fileno()))
        except UntrustedPath as exc:
            raise DeliveryFailed(str(exc)) from None
        return file.read(64 * 1024).rstrip(b"\r\n")


# ------------------------------------------------------------------ e-mail


def send_email(addresses: tuple[str, ...] | list[str], event: dict[str, Any],
               smtp: SmtpSpec | None) -> str:
    message = email_message(addresses, event, sender(smtp, str(event.get("host"))))
    if smtp is not None:
        return _send_smtp(smtp, message)
    program = shutil.which("sendmail") or next(
        (path for path in SENDMAIL_PATHS if os.access(path, os.X_OK)), None)
    if program is None:
        raise DeliveryFailed("no sendmail on this machine: install one, or set [notify.smtp]")
    try:
        done = subprocess.run([program, "-t", "-oi"], input=message.as_bytes(),
                              capture_output=True, timeout=SMTP_TIMEOUT_S, check=False)
    except subprocess.TimeoutExpired:
        raise DeliveryFailed(f"sendmail did not finish within {SMTP_TIMEOUT_S:g}s") from None
    if done.returncode != 0:
        raise DeliveryFailed(f"sendmail exited {done.returncode}: {_last_line(done.stderr)}")
    return f"sendmail accepted it for {len(addresses)} recipient(s)"


def sender(smtp: SmtpSpec | None, host: str) -> str:
    if smtp is not None and smtp.user and "@" in smtp.user:
        return smtp.user
    return f"easyflow@{host}"


def _send_smtp(smtp: SmtpSpec, message: EmailMessage) -> str:
    import smtplib

    password = read_secret(smtp.password_file).decode() if smtp.password_file else None
    try:
        with smtplib.SMTP(smtp.host, smtp.port, timeout=SMTP_TIMEOUT_S) as server:
            if smtp.starttls:
                server.starttls()
            if smtp.user and password is not None:
                server.login(smtp.user, password)
            refused = server.send_message(message)
    except smtplib.SMTPException as exc:
        raise DeliveryFailed(f"SMTP {smtp.host}:{smtp.port}: {printable(str(exc))}") from None
    if refused:
        raise DeliveryFailed(f"SMTP refused {', '.join(sorted(refused))}")
    return f"SMTP {smtp.host} accepted it"


def email_message(addresses: tuple[str, ...] | list[str], event: dict[str, Any],
                  from_address: str) -> EmailMessage:
    """Plain text: the summary, the error, the log's last lines, the command to see more."""
    message = EmailMessage()
    message["Subject"] = str(event.get("summary"))
    message["From"] = from_address
    message["To"] = ", ".join(addresses)
    message.set_content(email_text(event))
    return message


def email_text(event: dict[str, Any]) -> str:
    run_id = event.get("id")
    parts = [str(event.get("summary")), ""]
    if event.get("error"):
        parts += [f"Error: {event['error']}", ""]
    tail = log_tail(event.get("log_path"))
    if tail:
        parts += [f"The last {len(tail)} lines of its log:", *(f"  {line}" for line in tail), ""]
    parts += [f"See more: easyflow runs show {run_id}   (its log: easyflow logs {run_id})",
              f"Event id: {event.get('event_id')}"]
    return "\n".join(parts) + "\n"


def log_tail(path: Any, lines: int = LOG_TAIL_LINES) -> list[str]:
    if not isinstance(path, str):
        return []
    try:
        with open(path, "rb") as log:
            log.seek(max(0, os.fstat(log.fileno()).st_size - LOG_TAIL_BYTES))
            text = log.read().decode(errors="replace")
    except OSError:
        return []
    return text.splitlines()[-lines:]
