import pytest

from easyflow_cli.core.errors import SpecErrors
from easyflow_cli.core.model import CostPriority, Mode
from easyflow_cli.core.spec import parse_workflow_text, spec_from_dict, spec_to_dict, to_toml

FULL = """
name = "nightly-report"
description = "Everything set"
execution_mode = "eco"
deadline = 2026-12-01T09:00:00Z
cost_priority = "high"
timeout = "10m"
retries = 2
retry_backoff = "30s"
allow_overlap = true
keep_runs = 500

[[steps]]
name = "fetch"
run = ["curl", "-fsS", "https://example.invalid"]
env = { TOKEN = "x" }
cwd = "/tmp"
timeout = "1m"

[[steps]]
name = "render"
run = "python3 render.py --out 'my report.txt'"
continue_on_error = true

[[steps]]
name = "notify"
run = "echo done | cat"
shell = true

[[schedules]]
cron = "0 2 * * *"
timezone = "Europe/Berlin"

[[schedules]]
every = "90m"
mode = "balanced"
deadline_after = "2h"
"""


def errors_of(text, file="wf.toml"):
    with pytest.raises(SpecErrors) as caught:
        parse_workflow_text(text, file)
    return [str(e) for e in caught.value.errors]


def test_full_workflow_parses():
    spec = parse_workflow_text(FULL, None)
    assert spec.name == "nightly-report"
    assert spec.execution_mode is Mode.ECO
    assert spec.cost_priority is CostPriority.HIGH
    assert spec.deadline.isoformat() == "2026-12-01T09:00:00+00:00"
    assert (spec.timeout, spec.retries, spec.retry_backoff) == (600, 2, 30)
    assert spec.keep_runs == 500
    fetch, render, notify = spec.steps
    assert fetch.argv() == ["curl", "-fsS", "https://example.invalid"]
    assert fetch.env == {"TOKEN": "x"} and fetch.timeout == 60
    assert render.argv() == ["python3", "render.py", "--out", "my report.txt"]
    assert render.continue_on_error
    assert notify.argv() == ["/bin/sh", "-c", "echo done | cat"]
    assert [s.kind for s in spec.schedules] == ["cron", "every"]
    assert spec.schedules[1].mode is Mode.BALANCED
    assert spec.schedules[1].deadline_after == 7200


def test_string_run_is_never_given_to_a_shell():
    spec = parse_workflow_text('name="x"\n[[steps]]\nrun = "echo $HOME; rm -rf /"\n')
    assert spec.steps[0].argv() == ["echo", "$HOME;", "rm", "-rf", "/"]


def test_minimal_defaults():
    spec = parse_workflow_text('name = "x"\n[[steps]]\nrun = ["true"]\n')
    assert spec.execution_mode is None
    assert spec.cost_priority is CostPriority.NORMAL
    assert spec.retries == 0 and spec.steps[0].name == "step-1"


def test_round_trip_through_dict_and_toml():
    spec = parse_workflow_text(FULL, None)
    again = spec_from_dict(spec_to_dict(spec))
    assert spec_to_dict(again) == spec_to_dict(spec)
    reparsed = parse_workflow_text(to_toml(spec), None)
    assert spec_to_dict(reparsed) == spec_to_dict(spec)
    assert to_toml(reparsed) == to_toml(spec)


def test_syntax_errors_name_the_line():
    assert errors_of('name = "x"\n[[steps]]\nrun = ["a"\nfoo = 1\n') == [
        "wf.toml:4: TOML syntax error: Unclosed array"]
    assert errors_of('name = "x"\nname = "y"\n') == [
        "wf.toml:2: TOML syntax error: Cannot overwrite a value"]
    assert errors_of('name = "x') == [
        "wf.toml:1: TOML syntax error: Unterminated string at end of file"]


def test_unknown_key_with_suggestion_and_line():
    errs = errors_of('name = "x"\nexecution_mod = "eco"\n[[steps]]\nrun = ["true"]\n')
    assert errs == ["wf.toml:2: execution_mod: unknown key (did you mean 'execution_mode'?)"]


def test_unknown_step_key_points_at_step_line():
    errs = errors_of('name = "x"\n[[steps]]\nrun = ["a"]\n[[steps]]\nrun = ["b"]\n'
                     'frobnicate = "c"\n')
    assert errs == ["wf.toml:6: steps[1].frobnicate: unknown key"]


@pytest.mark.parametrize("line, expected", [
    ('execution_mode = "fast"',
     'execution_mode: must be one of "real-time", "balanced", "eco", got \'fast\''),
    ('cost_priority = "urgent"', "cost_priority: must be one of"),
    ('timeout = "5 minutes"', "timeout: bad duration '5 minutes'"),
    ('timeout = 5', "timeout: must be a string, got an integer"),
    ('retries = -1', "retries: must be a whole number from 0 to 100"),
    ('retries = true', "retries: must be a whole number from 0 to 100"),
    ('deadline = "tomorrow"', "deadline: must be an ISO-8601 time"),
    ('name = "has space"', "may only use letters, digits"),
    ('allow_overlap = "yes"', "allow_overlap: must be true or false"),
    ('max_concurrent = 0', "max_concurrent: must be a whole number from 1 to"),
    ('max_concurrent = "2"', "max_concurrent: must be a whole number from 1 to"),
    ('env_file = 3', "env_file: must be a string, got an integer"),
    ('env_file = ""', "env_file: must name a file"),
    ('keep_runs = 0', "keep_runs: must be a whole number >= 1, got 0"),
    ('keep_runs = "10"', "keep_runs: must be a whole number >= 1, got '10'"),
])
def test_bad_values(line, expected):
    text = f'{line}\n' if line.startswith("name") else f'name = "x"\n{line}\n'
    errs = errors_of(text + '[[steps]]\nrun = ["true"]\n')
    assert len(errs) == 1
    assert expected in errs[0]
    assert errs[0].startswith("wf.toml:1:") or errs[0].startswith("wf.toml:2:")


def test_missing_name_and_steps():
    errs = errors_of('description = "nothing"\n')
    assert "wf.toml: name: is required" in errs
    assert any("at least one [[steps]] is required" in e for e in errs)


def test_step_problems():
    errs = errors_of('name = "x"\n[[steps]]\nname = "a"\nrun = []\n[[steps]]\nname = "a"\n'
                     'run = [1]\nenv = { "BAD-NAME" = "1", N = 2 }\n')
    assert "wf.toml:4: steps[0].run: must name a program to run" in errs
    assert "wf.toml:6: steps[1].name: duplicate step name 'a'" in errs
    assert "wf.toml:7: steps[1].run: must be a list of strings" in errs
    assert any("steps[1].env.N: must be a string" in e for e in errs)


def test_shell_needs_string():
    errs = errors_of('name = "x"\n[[steps]]\nshell = true\nrun = ""\n')
    assert errs == ["wf.toml:4: steps[0].run: with shell = true must be a non-empty command string"]


def test_schedule_needs_exactly_one_kind():
    errs = errors_of('name = "x"\n[[steps]]\nrun = ["true"]\n[[schedules]]\ncron = "* * * * *"\n'
                     'every = "5m"\n')
    assert errs == ["wf.toml:4: schedules[0]: needs exactly one of cron, every, at"]


def test_bad_cron_and_timezone():
    errs = errors_of('name = "x"\n[[steps]]\nrun = ["true"]\n[[schedules]]\ncron = "61 * * * *"\n'
                     '[[schedules]]\ncron = "0 2 * * *"\ntimezone = "Europe/Berln"\n')
    assert len(errs) == 2
    assert errs[0].startswith("wf.toml:5: schedules[0].cron:")
    assert errs[1].startswith("wf.toml:") and "Europe/Berln" in errs[1]


def test_call_step_parses_and_round_trips():
    spec = parse_workflow_text('name = "x"\n[[steps]]\ncall = "pkg.mod:main"\nargs = ["a", "b"]\n'
                               'timeout = "5s"\n')
    step = spec.steps[0]
    assert (step.call, step.args, step.run, step.timeout) == ("pkg.mod:main", ("a", "b"), (), 5)
    assert spec_to_dict(spec)["steps"][0] == {"name": "step-1", "call": "pkg.mod:main",
                                              "args": ["a", "b"], "timeout": "5s"}
    assert spec_to_dict(spec_from_dict(spec_to_dict(spec))) == spec_to_dict(spec)
    assert to_toml(parse_workflow_text(to_toml(spec))) == to_toml(spec)


@pytest.mark.parametrize("body, expected", [
    ('call = "pkg.mod"', "wf.toml:3: steps[0].call: must look like 'package.module:function', "
                         "got 'pkg.mod'"),
    ('call = 3', "wf.toml:3: steps[0].call: must be a string, got an integer"),
    ('call = "m:f"\nrun = ["true"]', "wf.toml:3: steps[0].call: give either run or call, not both"),
    ('call = "m:f"\nshell = true', "wf.toml:4: steps[0].shell: only applies to run, not to call"),
    ('call = "m:f"\nargs = "a b"', "wf.toml:4: steps[0].args: must be a list of strings"),
    ('call = "m:f"\nargs = [1]', "wf.toml:4: steps[0].args: must be a list of strings"),
    ('run = ["echo"]\nargs = ["a"]', "wf.toml:4: steps[0].args: only applies to call; put "
                                     "arguments in run"),
    ('cal = "m:f"\nrun = ["true"]', "wf.toml:3: steps[0].cal: unknown key (did you mean 'call'?)"),
])
def test_call_step_problems(body, expected):
    assert errors_of(f'name = "x"\n[[steps]]\n{body}\n') == [expected]


def test_secret_sources_round_trip_as_references():
    text = ('name = "x"\nmax_concurrent = 2\nenv_file = "/etc/x.env"\n[[steps]]\nrun = ["true"]\n'
            'env_file = "/etc/step.env"\nenv = { A = "a", T = { credential = "api-token" } }\n'
            '[[schedules]]\nevery = "1h"\njitter = "5m"\n')
    spec = parse_workflow_text(text, None)
    assert spec.max_concurrent == 2 and spec.env_file == "/etc/x.env"
    assert spec.steps[0].credentials == {"T": "api-token"} and spec.steps[0].env == {"A": "a"}
    assert spec.schedules[0].jitter == 300
    assert spec_to_dict(parse_workflow_text(to_toml(spec), None)) == spec_to_dict(spec)
    assert spec_from_dict(spec_to_dict(spec)).steps == spec.steps


def test_a_relative_env_file_is_the_workflow_file_s_neighbour(tmp_path):
    spec = parse_workflow_text('name = "x"\nenv_file = "s.env"\n[[steps]]\nrun = ["true"]\n',
                               str(tmp_path / "w.toml"))
    assert spec.env_file == str(tmp_path / "s.env")


@pytest.mark.parametrize("env, expected", [
    ('{ T = { credential = "../x" } }', "steps[0].env.T.credential: '../x' is not a credential"),
    ('{ T = { credential = 1 } }', "steps[0].env.T.credential: must be a string"),
    ('{ T = { credential = "a", x = 1 } }', "steps[0].env.T.x: unknown key"),
    ('{ T = { secret = "a" } }', "steps[0].env.T: must be a string or { credential"),
])
def test_bad_credentials(env, expected):
    errs = errors_of(f'name = "x"\n[[steps]]\nrun = ["true"]\nenv = {env}\n')
    assert len(errs) == 1 and errs[0].startswith(f"wf.toml:4: {expected}")


def test_bad_jitter():
    errs = errors_of('name = "x"\n[[steps]]\nrun = ["true"]\n[[schedules]]\nevery = "1h"\n'
                     'jitter = "soon"\n')
    assert len(errs) == 1 and errs[0].startswith("wf.toml:6: schedules[0].jitter: bad duration")
