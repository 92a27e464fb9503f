"""The cluster's libraries (the `[cluster]` extra) are imported only in cluster mode: with no
`[cluster]`, commands and the daemon's modules run without psycopg, Celery or Redis."""

import json
import subprocess
import sys

from tests.conftest import subprocess_env

CLUSTER_PACKAGES = ("psycopg", "celery", "kombu", "redis", "easyflow_cli.storage.pg_store",
                    "easyflow_cli.storage.pg_queue")
COMMANDS = [["workflow", "add", "{wf}"], ["run", "hello", "--now"], ["runs", "list", "--json"],
            ["status"], ["schedule", "list"], ["report", "costs", "--json"]]
SCRIPT = """
import json, sys
from typer.testing import CliRunner
from easyflow_cli.cli.main import app
for command in json.loads(sys.argv[1]):
    result = CliRunner().invoke(app, command)
    # `status` says 1 with no daemon; a traceback would be an exception other than SystemExit
    assert result.exit_code in (0, 1) and isinstance(result.exception, (SystemExit, type(None))), (
        command, result.output)
import easyflow_cli.runtime.daemon.service
from easyflow_cli.core.config import load_config
load_config()
print(json.dumps(sorted(sys.modules)))
"""


def test_no_cluster_library_is_imported_without_a_cluster(tmp_path, write, home):
    workflow = write("hello.toml", 'name = "hello"\n[[steps]]\nrun = ["true"]\n')
    commands = [[part.format(wf=workflow) for part in command] for command in COMMANDS]
    done = subprocess.run([sys.executable, "-c", SCRIPT, json.dumps(commands)],
                          capture_output=True, text=True, env=subprocess_env(home), timeout=120)
    assert done.returncode == 0, done.stderr
    modules = json.loads(done.stdout.splitlines()[-1])
    assert "easyflow_cli.storage.store" in modules  # the commands did open the database
    assert [m for m in modules if m.split(".")[0] in CLUSTER_PACKAGES
            or m in CLUSTER_PACKAGES] == []
