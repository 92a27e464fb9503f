"""`[notify]`: read and checked like every other key, written back, overlaid on the config's."""

import pytest

from easyflow_cli.core.config import load_config
from easyflow_cli.core.errors import SpecErrors
from easyflow_cli.core.model import Mode
from easyflow_cli.core.notify import (
    Channel,
    Event,
    NoticeBook,
    NotifySpec,
    SmtpSpec,
    rule_of,
)
from easyflow_cli.core.spec import parse_workflow_text, spec_from_dict, spec_to_dict

STEPS = '[[steps]]\nrun = ["true"]\n'
FULL = '''name = "w"
[[steps]]
run = ["true"]

[notify]
on = ["failure", "recovery", "late", "slow"]
command = ["/usr/local/bin/page-oncall", "--team", "ops"]
webhook = "https://hooks.example.com/easyflow"
webhook_secret_file = "/etc/easyflow/hook.secret"
email = ["ops@example.com"]
late_after = "10m"
slow_factor = 4

[notify.smtp]
host = "smtp.example.com"
port = 465
starttls = false
user = "robot@example.com"
password_file = "/etc/easyflow/smtp.password"
'''


def test_a_full_notify_table_reads_and_round_trips():
    spec = parse_workflow_text(FULL, "w.toml")
    assert spec.notify == NotifySpec(
        on=(Event.FAILURE, Event.RECOVERY, Event.LATE, Event.SLOW),
        command=("/usr/local/bin/page-oncall", "--team", "ops"),
        webhook="https://hooks.example.com/easyflow",
        webhook_secret_file="/etc/easyflow/hook.secret", email=("ops@example.com",),
        smtp=SmtpSpec("smtp.example.com", 465, False, "robot@example.com",
                      "/etc/easyflow/smtp.password"),
        late_after=600.0, slow_factor=4.0)
    assert spec_from_dict(spec_to_dict(spec)).notify == spec.notify


@pytest.mark.parametrize(("table", "where", "says"), [
    ('on = ["failure", "crash"]', "w.toml:6: notify.on", "unknown event 'crash'"),
    ('on = "failure"', "w.toml:6: notify.on", "must be a list of event names"),
    ('command = []', "w.toml:6: notify.command", "must name a program"),
    ('command = [1]', "w.toml:6: notify.command", "must be an argv list"),
    ('webhook = "ftp://x"', "w.toml:6: notify.webhook", "http:// or https:// URL"),
    ('email = ["nobody"]', "w.toml:6: notify.email", "is not an e-mail address"),
    ('late_after = "soon"', "w.toml:6: notify.late_after", "bad duration"),
    ('slow_factor = 1', "w.toml:6: notify.slow_factor", "above 1"),
    ('slow_factor = true', "w.toml:6: notify.slow_factor", "above 1"),
    ('webhok = "https://x"', "w.toml:6: notify.webhok", "did you mean 'webhook'"),
    ('smtp = {port = 25}', "w.toml:6: notify.smtp.host", "is required"),
    ('smtp = {host = "h", port = 70000}', "w.toml:6: notify.smtp.port", "port number"),
])
def test_a_bad_key_names_file_line_and_field(table, where, says):
    with pytest.raises(SpecErrors) as caught:
        parse_workflow_text(f'name = "w"\n{STEPS}\n[notify]\n{table}\n', "w.toml")
    message = str(caught.value)
    assert message.startswith(where) and says in message, message


def test_notify_must_be_a_table():
    with pytest.raises(SpecErrors, match=r"w.toml:1: notify: must be a table"):
        parse_workflow_text(f'notify = 3\nname = "w"\n{STEPS}', "w.toml")


def test_the_config_gives_defaults_a_workflow_overlays_key_by_key(home):
    home.mkdir(parents=True)
    (home / "easyflow.toml").write_text(
        '[notify]\nwebhook = "https://hooks.example.com/all"\nslow_factor = 5\n')
    config = load_config()
    assert config.notify.webhook == "https://hooks.example.com/all"
    own = NotifySpec(on=(Event.LATE,), command=("page",))
    rule = rule_of(own, config.notify, retries=2)
    assert rule is not None
    assert rule.channels == (Channel.COMMAND, Channel.WEBHOOK)
    assert rule.on == {Event.LATE} and rule.slow_factor == 5.0 and rule.retries == 2
    assert rule_of(None, config.notify, 0).on == {Event.FAILURE, Event.RECOVERY}


def test_a_bad_config_key_names_its_line(home):
    home.mkdir(parents=True)
    (home / "easyflow.toml").write_text('[pools.eco]\nworkers = 1\n\n[notify]\non = ["x"]\n')
    with pytest.raises(SpecErrors, match=r"easyflow.toml:5: notify.on: unknown event 'x'"):
        load_config()


def test_no_channel_no_rule_and_the_book_holds_only_rules():
    assert rule_of(NotifySpec(on=(Event.SLOW,)), NotifySpec(), 0) is None
    book = NoticeBook.build(NotifySpec(), {m: 60.0 for m in Mode},
                            [("a", NotifySpec(webhook="http://h/"), 0), ("b", None, 0),
                             ("c", NotifySpec(email=("o@x",), on=(Event.LATE,),
                                              late_after=5.0), 0)])
    assert set(book.rules) == {"a", "c"}
    assert book.watching(Event.LATE) == ["c"]
    assert book.late_after(book.rules["a"], Mode.ECO) == 60.0
    assert book.late_after(book.rules["c"], Mode.ECO) == 5.0
