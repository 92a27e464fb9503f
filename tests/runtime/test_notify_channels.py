"""The channels, for real: a command given the event on stdin, a webhook on 127.0.0.1 (signed),
sendmail (a stand-in on PATH), and secret files root must not trust."""

import base64
import hashlib
import hmac
import json
import os
import socketserver
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from easyflow_cli.core.notify import Channel, NotifySpec, SmtpSpec
from easyflow_cli.runtime.notify_channels import (
    DeliveryFailed,
    email_text,
    read_secret,
    send,
)

EVENT = {"event": "failure", "event_id": "e1", "id": 7, "summary": "easyflow on box: w failed",
         "error": "exit 3", "host": "box"}


@pytest.fixture
def server():
    got: list[tuple[dict, bytes]] = []
    status = [200]

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            got.append((dict(self.headers), self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(status[0])
            self.end_headers()

        def log_message(self, *args):
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/hook", got, status
    httpd.shutdown()
    httpd.server_close()


def test_a_webhook_gets_the_event_signed(server, tmp_path):
    url, got, _ = server
    secret = tmp_path / "secret"
    secret.write_bytes(b"k3y\n")
    secret.chmod(0o600)
    spec = NotifySpec(webhook=url, webhook_secret_file=str(secret))
    assert send(Channel.WEBHOOK, spec, EVENT) == "HTTP 200"
    [(headers, body)] = got
    assert json.loads(body) == EVENT and headers["X-Easyflow-Event-Id"] == "e1"
    assert headers["X-Easyflow-Signature"] == "sha256=" + hmac.new(
        b"k3y", body, hashlib.sha256).hexdigest()


def test_a_webhook_that_refuses_or_is_not_there_fails_in_one_line(server):
    url, _, status = server
    status[0] = 503
    with pytest.raises(DeliveryFailed, match="HTTP 503"):
        send(Channel.WEBHOOK, NotifySpec(webhook=url), EVENT)
    with pytest.raises(DeliveryFailed, match="cannot reach"):
        send(Channel.WEBHOOK, NotifySpec(webhook="http://127.0.0.1:9/"), EVENT)


@pytest.mark.skipif(os.geteuid() != 0, reason="the refusal applies to root")
def test_root_refuses_a_secret_others_can_read(tmp_path):
    secret = tmp_path / "secret"
    secret.write_text("k3y")
    secret.chmod(0o640)
    with pytest.raises(DeliveryFailed, match="open to group or others"):
        read_secret(str(secret))
    os.chown(secret, 1, 0)
    secret.chmod(0o600)
    with pytest.raises(DeliveryFailed, match="owned by uid 1, not root"):
        read_secret(str(secret))


def test_a_command_gets_the_event_on_stdin(tmp_path):
    out = tmp_path / "got.json"
    spec = NotifySpec(command=("sh", "-c", f"cat > {out}; echo paged"))
    assert send(Channel.COMMAND, spec, EVENT) == "exit 0: paged"
    assert json.loads(out.read_text()) == EVENT
    with pytest.raises(DeliveryFailed, match="sh exited 4: no pager"):
        send(Channel.COMMAND, NotifySpec(command=("sh", "-c", "echo no pager >&2; exit 4")),
             EVENT)
    with pytest.raises(DeliveryFailed, match="cannot run /nonexistent"):
        send(Channel.COMMAND, NotifySpec(command=("/nonexistent",)), EVENT)


def test_email_goes_through_sendmail_as_plain_text(tmp_path, monkeypatch):
    mailbox = tmp_path / "mail.txt"
    fake = tmp_path / "bin" / "sendmail"
    fake.parent.mkdir()
    fake.write_text(f"#!/bin/sh\necho \"$@\" > {mailbox}.args\ncat > {mailbox}\n")
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{fake.parent}:{os.environ['PATH']}")
    log = tmp_path / "7.log"
    log.write_text("".join(f"line {i}\n" for i in range(30)))
    event = {**EVENT, "log_path": str(log)}
    answer = send(Channel.EMAIL, NotifySpec(email=("ops@example.com",)), event)
    assert answer == "sendmail accepted it for 1 recipient(s)"
    assert (tmp_path / "mail.txt.args").read_text().split() == ["-t", "-oi"]
    mail = mailbox.read_text()
    assert "To: ops@example.com" in mail and "Subject: easyflow on box: w failed" in mail
    assert "From: easyflow@box" in mail and "text/plain" in mail


def test_the_email_says_the_summary_error_log_tail_and_where_to_look(tmp_path):
    log = tmp_path / "7.log"
    log.write_text("".join(f"line {i}\n" for i in range(30)))
    text = email_text({**EVENT, "log_path": str(log)})
    lines = text.splitlines()
    assert lines[0] == "easyflow on box: w failed" and "Error: exit 3" in lines
    assert "  line 10" in lines and "  line 29" in lines and "  line 9" not in lines
    assert "See more: easyflow runs show 7   (its log: easyflow logs 7)" in lines


class FakeSmtp(socketserver.StreamRequestHandler):
    """Just enough of an SMTP server for smtplib: it keeps the AUTH line and the message."""

    seen: list[bytes] = []

    def reply(self, line: str) -> None:
        self.wfile.write(line.encode() + b"\r\n")

    def handle(self) -> None:
        self.reply("220 fake")
        while line := self.rfile.readline():
            verb = line[:4].upper()
            if verb == b"EHLO":
                self.reply("250-fake")
                self.reply("250 AUTH PLAIN")
            elif verb == b"AUTH":
                FakeSmtp.seen.append(line.strip())
                self.reply("235 ok")
            elif verb == b"DATA":
                self.reply("354 go on")
                body = b""
                while not body.endswith(b"\r\n.\r\n"):
                    body += self.rfile.readline()
                FakeSmtp.seen.append(body)
                self.reply("250 queued")
            elif verb == b"QUIT":
                self.reply("221 bye")
                return
            else:
                self.reply("250 ok")


def test_email_goes_through_smtp_with_the_password_file(tmp_path):
    password = tmp_path / "password"
    password.write_text("pw\n")
    password.chmod(0o600)
    FakeSmtp.seen = []
    with socketserver.ThreadingTCPServer(("127.0.0.1", 0), FakeSmtp) as server:
        threading.Thread(target=server.serve_forever, daemon=True).start()
        smtp = SmtpSpec("127.0.0.1", server.server_address[1], starttls=False,
                        user="robot@example.com", password_file=str(password))
        answer = send(Channel.EMAIL, NotifySpec(email=("ops@example.com",), smtp=smtp), EVENT)
        server.shutdown()
    assert answer == "SMTP 127.0.0.1 accepted it"
    auth, message = FakeSmtp.seen
    assert base64.b64decode(auth.split()[-1]) == b"\0robot@example.com\0pw"
    assert b"From: robot@example.com" in message and b"To: ops@example.com" in message
