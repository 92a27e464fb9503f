"""What a user reads is right: times with their zone (a schedule's in its own), the same value
the same way in a table, JSON and CSV, every listing with --json and --csv, local days for
`report costs --by day`, and unknown names and bad values told in our words.

Times are checked as the installed command prints them under TZ=America/New_York; the rest
in-process, on a fixed history.
"""

from __future__ import annotations

import csv
import inspect
import io
import json
import re
import subprocess
import types
import typing
from datetime import datetime, timedelta
from decimal import Decimal
from enum import Enum
from typing import Any

import pytest
import typer
from freezegun import freeze_time
from typer.testing import CliRunner

from easyflow_cli.cli.main import app
from easyflow_cli.core.timeutil import to_iso
from easyflow_cli.storage.sqlite_queue import insert_runs
from easyflow_cli.storage.store import Store
from tests.conftest import easyflow_command, subprocess_env

runner = CliRunner()
NEW_YORK = "America/New_York"
COLUMNS = ("workflow", "trigger", "mode", "mode_reason", "cost_priority", "priority_rank",
           "state", "enqueued_at", "started_at", "finished_at", "duration_s", "cpu_user_s",
           "cpu_system_s", "off_peak", "pool")
# Commands that print one document (a run, a workflow, the daemon, a benchmark), not a list.
ONE_DOCUMENT = {"run", "status", "bench", "workflow show", "runs show", "runs retry", "why"}


def invoke(*args: str) -> tuple[int, str, str]:
    result = runner.invoke(app, list(args), prog_name="easyflow")
    return result.exit_code, result.stdout, result.stderr


def easyflow(home, *args: str, tz: str = NEW_YORK) -> subprocess.CompletedProcess:
    return subprocess.run([*easyflow_command(), *args], text=True, capture_output=True,
                          env=subprocess_env(home, TZ=tz, COLUMNS="250"),
                          stdin=subprocess.DEVNULL)


def add_workflows(write):
    """backup (eco, a Berlin cron at 03:00) and quick; the folder they are in."""
    write("backup.toml", 'name = "backup"\nexecution_mode = "eco"\n[[steps]]\nrun = ["true"]\n'
          '[[schedules]]\ncron = "0 3 * * *"\ntimezone = "Europe/Berlin"\n')
    return write("quick.toml", 'name = "quick"\n[[steps]]\nrun = ["true"]\n').parent


def register(home, write) -> None:
    assert invoke("workflow", "add", str(add_workflows(write)))[0] == 0


def seed_finished(home, finished: list[str], workflow: str = "quick", seconds: float = 60.0,
                  mode: str = "real-time") -> None:
    """Succeeded runs (at peak price, 0.1 CPU-s) that finished at these UTC times."""
    rows = []
    for end in finished:
        ended = datetime.fromisoformat(end.replace("Z", "+00:00"))
        began = ended - timedelta(seconds=seconds)
        rows.append((workflow, "manual", mode, "manual", "normal", 0, "succeeded",
                     to_iso(began), to_iso(began), to_iso(ended), seconds, 0.1, 0.0, 0, mode))
    with Store.open(home) as store:
        insert_runs(store, COLUMNS, rows)


def csv_rows(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text)))


# ---------------------------------------------------------------------- times


def test_report_costs_by_day_counts_the_local_days_since_and_until_mean(home, write):
    register(home, write)
    # New York: 23:30 on Nov 30, 10:00 and 22:00 on Dec 1, 01:00 on Dec 2.
    seed_finished(home, ["2026-12-01T04:30:00Z", "2026-12-01T15:00:00Z",
                         "2026-12-02T03:00:00Z", "2026-12-02T06:00:00Z"])
    done = easyflow(home, "report", "costs", "--by", "day", "--since", "2026-12-01",
                    "--until", "2026-12-02", "--json")
    report = json.loads(done.stdout)
    assert [(g["key"], g["runs"]) for g in report["groups"]] == [("2026-12-01", 2)]
    assert report["period"]["since"] == "2026-12-01T05:00:00.000000Z"
    every = easyflow(home, "report", "costs", "--by", "day", "--csv").stdout
    assert [(r["day"], r["runs"]) for r in csv_rows(every)] == [
        ("2026-11-30", "1"), ("2026-12-01", "2"), ("2026-12-02", "1")]
    in_utc = easyflow(home, "report", "costs", "--by", "day", "--csv", tz="UTC").stdout
    assert [(r["day"], r["runs"]) for r in csv_rows(in_utc)] == [
        ("2026-12-01", "2"), ("2026-12-02", "2")]


BERLIN_AND_LOCAL = re.compile(r"\d{4}-\d\d-\d\d 03:00:00 CES?T \(\d{4}-\d\d-\d\d 21:00:00 E[SD]T\)")


def test_a_schedule_shows_its_own_zone_and_local_time(home, write):
    register(home, write)
    nxt = easyflow(home, "schedule", "next", "backup", "-n", "2")
    lines = nxt.stdout.splitlines()
    assert len(lines) == 2 and all(BERLIN_AND_LOCAL.match(line) for line in lines), nxt.stdout
    assert BERLIN_AND_LOCAL.search(easyflow(home, "schedule", "list").stdout)
    fires = json.loads(easyflow(home, "schedule", "next", "backup", "--json").stdout)
    assert all(re.fullmatch(r"\S+T0[12]:00:00\.000000Z", f["fire_at"]) for f in fires)
    assert csv_rows(easyflow(home, "schedule", "next", "backup", "--csv").stdout)[0][
        "fire_at"] == fires[0]["fire_at"]
    at_home = easyflow(home, "schedule", "next", "backup", "-n", "1", tz="Europe/Berlin")
    assert re.match(r"\S+ 03:00:00 CES?T +in ", at_home.stdout), at_home.stdout
    status = easyflow(home, "status").stdout
    assert re.search(rf"^  next: {BERLIN_AND_LOCAL.pattern}  schedule 1 \(backup\)$", status,
                     re.M), status
    shown = easyflow(home, "workflow", "show", "backup").stdout
    assert BERLIN_AND_LOCAL.search(shown), shown
    status = json.loads(easyflow(home, "status", "--json").stdout)
    assert status["next_fires"][0]["timezone"] == "Europe/Berlin"
    assert re.fullmatch(r"\S+T02:00:00\.000000Z", status["next_fires"][0]["next_fire_at"])


def test_schedule_add_prints_an_at_moment_once_in_its_zone(home, write):
    register(home, write)
    done = easyflow(home, "schedule", "add", "quick", "--at", "2030-01-01T10:00",
                    "--timezone", "Europe/Berlin")
    assert done.returncode == 0
    assert done.stderr == "schedule 2: quick at 2030-01-01 10:00:00 CET\n"
    local = easyflow(home, "schedule", "add", "quick", "--at", "2030-01-01T10:00")
    assert local.stderr == "schedule 3: quick at 2030-01-01 10:00:00 EST\n"
    cron = easyflow(home, "schedule", "add", "quick", "--cron", "0 3 * * *", "--timezone",
                    "Europe/Berlin")
    assert re.fullmatch(rf"schedule 4: quick cron '0 3 \* \* \*' \(Europe/Berlin\), next fire "
                        rf"{BERLIN_AND_LOCAL.pattern}\n", cron.stderr), cron.stderr
    listed = easyflow(home, "schedule", "list").stdout
    assert "2030-01-01T09:00" not in listed and "2030-01-01 10:00:00 CET" in listed


def test_run_times_are_local_with_their_zone(home, write):
    register(home, write)
    seed_finished(home, ["2026-12-01T15:00:00Z"])
    listed = easyflow(home, "runs", "list").stdout
    assert "2026-12-01 09:59:00 EST" in listed
    shown = easyflow(home, "runs", "show", "1").stdout
    assert re.search(r"finished_at +2026-12-01 10:00:00 EST", shown)
    assert json.loads(easyflow(home, "runs", "show", "1", "--json").stdout)[
        "finished_at"] == "2026-12-01T15:00:00.000000Z"


# ---------------------------------------------------------------------- values


def test_paused_and_execution_mode_read_alike_in_table_json_and_csv(home, write):
    register(home, write)
    assert invoke("schedule", "pause", "1")[0] == 0
    table = invoke("schedule", "list")[1]
    assert "true" in table and "True" not in table
    assert json.loads(invoke("schedule", "list", "--json")[1])[0]["paused"] is True
    assert csv_rows(invoke("schedule", "list", "--csv")[1])[0]["paused"] == "true"
    shown = json.loads(invoke("workflow", "show", "backup", "--json")[1])
    assert shown["schedules"][0]["paused"] is True
    workflows = {r["name"]: r for r in json.loads(invoke("workflow", "list", "--json")[1])}
    assert workflows["quick"]["execution_mode"] is None
    assert {r["name"]: r["execution_mode"]
            for r in csv_rows(invoke("workflow", "list", "--csv")[1])} == {
        "backup": "eco", "quick": ""}
    assert re.search(r"quick +│ auto ", invoke("workflow", "list")[1])


def test_report_csv_is_headed_by_what_it_groups_by(home, write):
    register(home, write)
    seed_finished(home, ["2026-12-01T15:00:00Z"])
    for by in ("mode", "workflow", "day"):
        header = invoke("report", "costs", "--by", by, "--csv")[1].splitlines()[0]
        assert header.split(",")[0] == by


def test_report_pools_counts_foreground_runs_and_says_why_costs_differ(home, write):
    register(home, write)
    seed_finished(home, ["2026-12-01T15:00:00Z"] * 3)
    with Store.open(home) as store, store.write() as conn:
        conn.execute("UPDATE runs SET pool = 'foreground' WHERE id < 3")
    rows = csv_rows(invoke("report", "pools", "--csv")[1])
    assert {r["pool"]: int(r["runs"]) for r in rows} == {
        "real-time": 1, "balanced": 0, "eco": 0, "foreground": 2}
    assert sum(int(r["runs"]) for r in rows) == json.loads(
        invoke("report", "costs", "--json")[1])["total_runs"]
    assert "2 runs ran in the foreground" in invoke("report", "pools")[1]


def test_costs_in_tables_read_as_money_and_add_up(home, write):
    register(home, write)
    seed_finished(home, ["2026-12-01T15:00:00Z"] * 3, seconds=0.012)
    seed_finished(home, ["2026-12-01T15:00:00Z"], seconds=0.011, mode="balanced")
    table = invoke("report", "costs", "--by", "workflow")[1]
    assert not re.search(r"\$0\.(?!\d)|\$0\.0+ ", table), table  # no $0. nor $0.000000
    assert re.search(r"│ eco .* \$0 │ +- │", table)  # nothing, not a tiny amount
    costs = re.findall(r"^│ (real-time|balanced|total) .* (\$[\d.]+) │ +(\$[\d.]+)? +│",
                       table, re.M)
    shown = {mode: Decimal(cost[1:]) for mode, cost, _ in costs}
    assert shown["total"] == shown["real-time"] + shown["balanced"] > 0
    assert len({len(cost) - cost.index(".") for _, cost, _ in costs}) == 1  # points aligned
    exact = 3 * 0.012 / 3600 * 0.10 + 0.011 / 3600 * 0.08  # peak prices, CPU time free
    report = json.loads(invoke("report", "costs", "--json")[1])
    assert report["total_cost"] == pytest.approx(exact, rel=1e-11)  # not rounded to 1e-6
    assert float(csv_rows(invoke("report", "costs", "--csv")[1])[0]["cost"]) == pytest.approx(
        3 * 0.012 / 3600 * 0.10, rel=1e-11)


EXPONENT = re.compile(r"\d[eE][-+]?\d")


def test_json_and_csv_write_money_in_plain_digits_every_digit_kept(home, write):
    register(home, write)
    seed_finished(home, ["2026-12-01T15:00:00Z"], seconds=0.0102)
    exact = 0.0102 / 3600 * 0.10
    for by in ("mode", "workflow", "day"):
        document = invoke("report", "costs", "--by", by, "--json")[1]
        table = invoke("report", "costs", "--by", by, "--csv")[1]
        assert not EXPONENT.search(document) and not EXPONENT.search(table), (by, document)
        assert json.loads(document)["total_cost"] == pytest.approx(exact, rel=1e-11)
        assert float(csv_rows(table)[0]["cost"]) == pytest.approx(exact, rel=1e-11)
    quote = invoke("run", "quick", "--quote", "--json")[1]
    assert '"cost": 0.000000' in quote and not EXPONENT.search(quote), quote


def test_plain_numbers_keep_their_value_and_leave_strings_alone():
    from easyflow_cli.cli.output import json_text, plain_number

    data = {"tiny": [2.83e-05, -2.5e-12, 1e-300], "big": 1.5e22, "ok": 0.1, "n": 3,
            "text": "2.83e-05", "nested": {"x": 7e-10}}
    text = json_text(data)
    assert not EXPONENT.search(text.replace('"2.83e-05"', ""))
    assert json.loads(text) == data
    assert plain_number(2.83e-05) == "0.0000283" and plain_number(0.5) == "0.5"


@freeze_time("2026-12-01 12:00:00")
def test_a_quote_reads_as_money(home, write):
    register(home, write)
    seed_finished(home, ["2026-12-01T11:00:00Z"], seconds=0.012)
    quote = json.loads(invoke("run", "quick", "--quote", "--json")[1])["quotes"]
    assert quote[0]["cost"] == pytest.approx(0.012 / 3600 * 0.10, rel=1e-11)  # not 0.0
    text = invoke("run", "quick", "--quote")[1]
    assert text.startswith("Run now: $0.0000003333 · Run overnight: $0.0000000667\n")
    assert re.search(r"│ real-time │ 2026-12-01 12:00:00 UTC │ .* │ \$0\.0000003333 │", text)


# ---------------------------------------------------------------------- listings and errors


def commands(group=None, path=()):
    group = group or typer.main.get_command(app)
    for name, command in group.commands.items():
        if getattr(command, "commands", None):
            yield from commands(command, (*path, name))
        else:
            yield " ".join((*path, name)), command


def options_of(command) -> set[str]:
    return {o for p in command.params for o in getattr(p, "opts", [])}


def test_every_listing_takes_json_and_csv():
    listings = [name for name, command in commands()
                if "--json" in options_of(command) and name not in ONE_DOCUMENT]
    assert {"workflow list", "runs list", "schedule list", "schedule next",
            "report costs"} <= set(listings)
    for name in listings:
        assert "--csv" in options_of(dict(commands())[name]), f"{name} has --json, not --csv"


def value_type(command, param) -> Any:
    """The type the command's function declares for the parameter (X of `X | None`)."""
    hint = typing.get_type_hints(inspect.unwrap(command.callback))[param.name]
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        return next(arg for arg in typing.get_args(hint) if arg is not type(None))
    return hint


def required_arguments(command) -> list[str]:
    return ["1" if value_type(command, p) is int else "w" for p in command.params
            if p.param_type_name == "argument" and p.required]


def required_options(command) -> list[str]:
    """Each required option with a value it takes: a choice's first, else a duration."""
    return [word for p in command.params if p.param_type_name == "option" and p.required
            for word in (p.opts[0], _a_value_of(command, p))]


def _a_value_of(command, param) -> str:
    annotation = value_type(command, param)
    if isinstance(annotation, type) and issubclass(annotation, Enum):
        return str(next(iter(annotation)).value)
    return "1d"


def test_a_bad_choice_names_the_option_and_what_it_may_be(home):
    checked = 0
    for name, command in commands():
        for param in command.params:
            annotation = value_type(command, param)
            if param.param_type_name == "option" and isinstance(annotation, type) \
                    and issubclass(annotation, Enum):
                code, out, err = invoke(*name.split(), *required_arguments(command),
                                        param.opts[0], "turbo")
                choices = ", ".join(str(m.value) for m in annotation)
                assert code == 2 and re.match(
                    rf"error: easyflow {name}: {param.opts[0]}: 'turbo' is not a [a-z ]+ "
                    rf"\({choices}\) \(see `easyflow {name} --help`\)$",
                    err), (name, err)
                checked += 1
    assert checked >= 3  # run --mode, schedule add --mode, runs list --state


def test_a_bad_number_names_the_option_and_says_what_to_give(home):
    checked = 0
    for name, command in commands():
        for param in command.params:
            if value_type(command, param) is not int or name == "bench":
                continue
            label = (param.opts[0] if param.param_type_name == "option"
                     else param.name.replace("_", " "))
            args = [*name.split(), *required_arguments(command)]
            bad = (["x"] if param.param_type_name == "argument" else [param.opts[0], "x"])
            if param.param_type_name == "argument":
                args = args[:-1]
            code, out, err = invoke(*args, *bad)
            assert (code, err.splitlines()[0].split(" (see")[0]) == (
                2, f"error: easyflow {name}: {label}: 'x' is not a whole number"), (name, err)
            checked += 1
    assert checked >= 8
    code, _, err = invoke("runs", "list", "--limit", "0")
    assert err.startswith("error: easyflow runs list: --limit: 0 is out of range; give 1 to "
                          "1,000,000 (see ")


def one_usage_error(name: str, *args: str) -> str:
    """The one error line `easyflow NAME ARGS` gives, checked for exit 2 and nothing more."""
    code, out, err = invoke(*name.split(), *args)
    assert (code, out, err.count("\n")) == (2, "", 1), (name, args, out, err)
    assert err.endswith(f" (see `easyflow {name} --help`)\n"), (name, args, err)
    return err.split(" (see `")[0]


def test_every_command_says_in_our_words_what_its_usage_lacks(home):
    """An unknown option, an option left without its value, a missing argument and one too
    many: one line naming the command, exit 2, in no words of Click's."""
    walked = 0
    for name, command in commands():
        assert one_usage_error(name, "--no-such") == f"error: easyflow {name}: no option --no-such"
        required = required_arguments(command)
        if required:
            assert re.fullmatch(rf"error: easyflow {name}: missing the [a-z ]+",
                                one_usage_error(name)), name
        elif not any(p.param_type_name == "argument" for p in command.params):
            assert one_usage_error(name, *required_options(command), "extra") == (
                f"error: easyflow {name}: unexpected argument 'extra'")
        for param in command.params:
            if param.param_type_name == "option" and not param.is_flag:
                option = param.opts[0]
                assert one_usage_error(name, *required, option) == (
                    f"error: easyflow {name}: {option} needs a value"), (name, option)
        walked += 1
    assert walked >= 20
    assert one_usage_error("run", "w", "--now=1") == "error: easyflow run: --now takes no value"
    assert one_usage_error("run", "w", "--mod") == (
        "error: easyflow run: no option --mod (did you mean --mode, --now?)")
    code, _, err = invoke("runz")
    assert (code, err) == (2, "error: easyflow: no command 'runz' (did you mean 'run', 'runs'?)"
                              " (see `easyflow --help`)\n")


def test_unknown_names_exit_2_everywhere(home, write):
    register(home, write)
    for args in (["runs", "list", "--workflow", "nosuch"], ["schedule", "list", "-w", "nosuch"],
                 ["schedule", "next", "nosuch"], ["report", "costs", "-w", "nosuch"],
                 ["run", "nosuch", "--quote"], ["workflow", "show", "nosuch"]):
        code, out, err = invoke(*args)
        assert (code, out, err) == (
            2, "", "error: unknown workflow 'nosuch' (see `easyflow workflow list`)\n"), args
    seed_finished(home, ["2026-12-01T15:00:00Z"], workflow="gone")
    assert invoke("runs", "list", "--workflow", "gone", "--json")[0] == 0  # history is kept


def test_durations_that_are_not_accepted_say_why(home, write):
    register(home, write)
    code, _, err = invoke("run", "quick", "--now", "--deadline", "0s")
    assert (code, err) == (2, "error: --deadline: bad duration '0s': must be longer than zero\n")
    code, _, err = invoke("report", "costs", "--since", "0d")
    assert (code, err) == (2, "error: --since: bad duration '0d': must be longer than zero\n")


def test_counts_of_one_are_singular(home, write):
    err = invoke("workflow", "add", str(add_workflows(write)))[2]
    assert "added backup (1 step, 1 schedule) from" in err
    assert "added quick (1 step, 0 schedules) from" in err
    seed_finished(home, ["2026-12-01T15:00:00Z"])
    basis = json.loads(invoke("run", "quick", "--quote", "--json")[1])["quotes"][0]["basis"]
    assert basis == "median of 1 real-time run"
