import os

import pytest

from easyflow_cli.core.spec import parse_workflow_text
from easyflow_cli.runtime import secrets as secrets_module
from easyflow_cli.runtime.secrets import SecretUnavailable, read_env_file, resolve_secrets


def private(path, text):
    path.write_text(text)
    path.chmod(0o600)
    return path


def spec(tmp_path, body):
    file = tmp_path / "w.toml"
    file.write_text(f'name = "w"\n{body}')
    return parse_workflow_text(file.read_text(), str(file))


def test_file_then_step_file_then_env_then_credential(tmp_path):
    private(tmp_path / "all.env", "A=from-workflow\nB=from-workflow\nC=x\n")
    private(tmp_path / "step.env", "B=from-step\nC=from-step\n")
    (tmp_path / "creds").mkdir()
    private(tmp_path / "creds" / "api-token", "tok-123\n")
    workflow = spec(tmp_path, 'env_file = "all.env"\n[[steps]]\nrun = ["true"]\n'
                              'env_file = "step.env"\n'
                              'env = { C = "plain", D = { credential = "api-token" } }\n')
    resolved = resolve_secrets(workflow, {"CREDENTIALS_DIRECTORY": str(tmp_path / "creds")})
    assert resolved.environment(workflow.steps[0]) == {
        "A": "from-workflow", "B": "from-step", "C": "plain", "D": "tok-123"}
    assert "plain" not in resolved.values and "tok-123" in resolved.values


def test_dotenv_syntax_is_python_dotenv_s_and_literal(tmp_path):
    path = private(tmp_path / "s.env", "# c\nexport A='x y'\nB=\"multi\nline\"\nC=${A}\n")
    assert read_env_file(str(path)) == {"A": "x y", "B": "multi\nline", "C": "${A}"}


def test_a_credential_without_systemd_names_the_unit_line(tmp_path):
    workflow = spec(tmp_path, '[[steps]]\nrun = ["true"]\nenv = { T = { credential = "t" } }\n')
    with pytest.raises(SecretUnavailable, match=r"LoadCredential=t:"):
        resolve_secrets(workflow, {})


def test_a_missing_file_is_named(tmp_path):
    workflow = spec(tmp_path, 'env_file = "gone.env"\n[[steps]]\nrun = ["true"]\n')
    with pytest.raises(SecretUnavailable, match="gone.env: No such file"):
        resolve_secrets(workflow, {})


@pytest.mark.parametrize(("mode", "owner", "why"), [
    (0o640, 0, "open to group or others"), (0o600, 1234, "owned by uid 1234")])
def test_as_root_a_secret_file_others_could_read_or_write_is_refused(tmp_path, monkeypatch,
                                                                     mode, owner, why):
    path = private(tmp_path / "s.env", "A=b\n")
    path.chmod(mode)
    real_fstat = os.fstat
    monkeypatch.setattr(secrets_module.os, "fstat", lambda fd: _owned(real_fstat(fd), owner))
    monkeypatch.setattr("easyflow_cli.core.trust.os.geteuid", lambda: 0)
    with pytest.raises(SecretUnavailable, match=why):
        read_env_file(str(path))


def _owned(info, uid):
    fields = list(info)
    fields[4] = uid
    return os.stat_result(fields)
