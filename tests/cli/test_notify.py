"""`notify test` tries a workflow's channels now; `notifications list` shows the outbox."""

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from typer.testing import CliRunner

from easyflow_cli.cli.daemon import _print_notifications
from easyflow_cli.cli.main import app

runner = CliRunner()


@pytest.fixture
def hook():
    got: list[dict] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            got.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args):
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/hook", got
    httpd.shutdown()
    httpd.server_close()


def add(write, name: str, notify: str) -> None:
    path = write(f"{name}.toml", f'name = "{name}"\n[[steps]]\nrun = ["false"]\n{notify}')
    assert runner.invoke(app, ["workflow", "add", str(path)]).exit_code == 0


def test_notify_test_says_what_each_channel_answered(home, write, hook):
    url, got = hook
    add(write, "w", f'[notify]\nwebhook = "{url}"\ncommand = ["sh", "-c", "exit 5"]\n')
    result = runner.invoke(app, ["notify", "test", "w", "--json"])
    assert result.exit_code == 1
    assert json.loads(result.stdout) == [
        {"channel": "command", "ok": False, "answer": "sh exited 5"},
        {"channel": "webhook", "ok": True, "answer": "HTTP 204"}]
    assert [(e["event"], e["workflow"], e["id"]) for e in got] == [("test", "w", 0)]


def test_notify_test_of_a_workflow_without_channels_is_bad_input(home, write):
    add(write, "quiet", "")
    result = runner.invoke(app, ["notify", "test", "quiet"])
    assert result.exit_code == 2 and "has no notification channel" in result.stderr


def test_notifications_list_shows_the_outbox(home, write):
    add(write, "w", '[notify]\nwebhook = "http://127.0.0.1:9/hook"\n')
    assert runner.invoke(app, ["run", "w", "--now"]).exit_code == 1  # in the foreground
    listed = json.loads(runner.invoke(app, ["notifications", "list", "--json"]).stdout)
    assert [(r["event"], r["workflow"], r["channel"], r["state"]) for r in listed] == [
        ("failure", "w", "webhook", "pending")]
    assert listed[0]["summary"].endswith("w failed (run 1, exit 1) after 1 attempt")
    csv_lines = runner.invoke(app, ["notifications", "list", "--csv"]).stdout.splitlines()
    assert csv_lines[0] == "id,created_at,event,workflow,run_id,channel,state,attempts,answer"
    assert len(csv_lines) == 2


def test_status_shows_a_failing_channel(capsys):
    _print_notifications({"pending": 2, "failing": [
        {"workflow": "w", "channel": "webhook", "since": "2026-12-01T02:00:00Z",
         "failures": 4, "error": "HTTP 503"}]})
    out = capsys.readouterr().out
    assert "notifications waiting: 2" in out
    assert "notification channel failing: webhook of w" in out and "HTTP 503" in out
