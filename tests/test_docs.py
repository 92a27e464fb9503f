"""Every shell example in README.md and docs/*.md runs here, so the docs cannot drift from the code.

A document's fenced ```sh, ```bash and ```console blocks run in order, in one scratch directory
of their own (a copy of the repository's `config/` and `systemd/`, `.venv` pointing at this
Python's environment, a fresh EASYFLOW_HOME), because later examples build on earlier ones.
A ```sh or ```bash block is a script that must exit 0. A ```console block is commands after
`$ ` with the output they show: each must exit 0 unless the next command is `echo $?`, and its
output must match what is shown, loosely where it holds ids, times and figures (see `normalize`);
a line that is only `…` stands for any number of lines, a `…` inside a line for any text.

A block that cannot run in a test is marked right before it with
`<!-- docs-test: skip (the reason) -->`. Processes an example leaves behind (a daemon started
with `&`) are stopped when its document is done.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import typer

from easyflow_cli.cli.main import app
from easyflow_cli.core.spec import parse_workflow_text
from tests.conftest import REPO, subprocess_env

DOCUMENTS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
SHELL_LANGUAGES = {"sh", "bash", "console"}
SKIP_MARKER = re.compile(r"^\s*<!--\s*docs-test:\s*skip\s*(?:\((?P<reason>[^)]*)\))?\s*-->")
FENCE = re.compile(r"^```(?P<lang>[\w-]*)\s*$")
BLOCK_TIMEOUT_S = 60
STATUS_MARK = "@@docs-test-status@@"


@dataclass(frozen=True)
class Block:
    """One fenced code block of a document, and its skip marker if it has one."""

    path: Path
    line: int
    lang: str
    text: str
    skip_reason: str | None

    @property
    def where(self) -> str:
        return f"{self.path.relative_to(REPO)}:{self.line}"

    @property
    def runs(self) -> bool:
        return self.lang in SHELL_LANGUAGES and self.skip_reason is None


@dataclass(frozen=True)
class Command:
    """One `$ ` command of a console block and the output shown under it."""

    line: str
    shown: str


def read_blocks(path: Path) -> list[Block]:
    lines = path.read_text().splitlines()
    blocks: list[Block] = []
    index = 0
    while index < len(lines):
        fence = FENCE.match(lines[index])
        if not fence:
            index += 1
            continue
        end = next(i for i in range(index + 1, len(lines)) if lines[i].startswith("```"))
        blocks.append(Block(path, index + 1, fence["lang"], "\n".join(lines[index + 1:end]),
                            _skip_reason(lines, index)))
        index = end + 1
    return blocks


def _skip_reason(lines: list[str], fence_index: int) -> str | None:
    """The reason of a skip marker on the last non-blank line before the fence ("" if none)."""
    before = [line for line in lines[:fence_index] if line.strip()]
    marker = SKIP_MARKER.search(before[-1]) if before else None
    if marker is None:
        return None
    return (marker["reason"] or "").strip()


def stray_skip_markers(path: Path) -> list[int]:
    """Lines of skip markers that do not stand right before a shell block."""
    marked = {block.line for block in read_blocks(path)
              if block.skip_reason is not None and block.lang in SHELL_LANGUAGES}
    lines = path.read_text().splitlines()
    strays = []
    for number, line in enumerate(lines, start=1):
        if SKIP_MARKER.search(line) and _next_fence(lines, number) not in marked:
            strays.append(number)
    return strays


def _next_fence(lines: list[str], after: int) -> int | None:
    for number in range(after + 1, len(lines) + 1):
        if lines[number - 1].strip():
            return number if FENCE.match(lines[number - 1]) else None
    return None


def console_commands(text: str) -> list[Command]:
    """`$ ` lines (a trailing backslash continues one) and the output shown under each."""
    commands: list[Command] = []
    command: list[str] = []
    shown: list[str] = []
    for line in text.splitlines():
        if line.startswith("$ ") or (command and command[-1].endswith("\\") and not shown):
            if line.startswith("$ ") and command:
                commands.append(Command("\n".join(command), "\n".join(shown)))
                command, shown = [], []
            command.append(line.removeprefix("$ "))
        else:
            shown.append(line)
    if command:
        commands.append(Command("\n".join(command), "\n".join(shown)))
    return commands


# A token that starts with a digit: ids, counts, prices, percentages, durations like 1h30m,
# dates and times. Its value varies from run to run; that it is there does not.
NUMBER = re.compile(r"\d[\d.,:+-]*(?:[a-zµ]+\d[\d.,:+-]*)*[a-zµ%]*(?:\s?[T ]\d[\d.:]*Z?)?")
EXPONENT = re.compile(r"(?<=\d)e(?=-?\d)")  # 2.7e-05: one figure, not two
RULE = re.compile(r"([─━═])\1+")


def normalize(text: str) -> str:
    """Output with what varies between runs made equal: numbers and times, and the width of
    table columns (Rich sizes them to their content)."""
    lines = [RULE.sub(r"\1", NUMBER.sub("0", EXPONENT.sub(".", line)))
             for line in text.splitlines()]
    return "\n".join(re.sub(r"\s+", " ", line).strip() for line in lines if line.strip())


def _is_ellipsis_line(line: str) -> bool:
    return bool(line.strip()) and not line.strip(" │┃|…").strip() and "…" in line


def shown_pattern(shown: str) -> re.Pattern[str]:
    parts = []
    for line in normalize(shown).splitlines():
        if _is_ellipsis_line(line):
            parts.append(r"(?:[^\n]*\n)*?")
        else:
            parts.append(".*?".join(re.escape(piece) for piece in line.split("…")) + r"\n")
    return re.compile("".join(parts))


def output_matches(shown: str, actual: str) -> bool:
    text = normalize(actual)
    return shown_pattern(shown).fullmatch(text + "\n" if text else "") is not None


# --- running a document ---------------------------------------------------------------------


class Scratch:
    """The directory a document's examples run in, and the process groups they started."""

    def __init__(self, root: Path) -> None:
        self.work = root / "work"
        self.work.mkdir()
        for name in ("config", "systemd"):
            shutil.copytree(REPO / name, self.work / name)
        (self.work / ".venv").symlink_to(sys.prefix)
        bin_dir = str(Path(sys.executable).parent)
        # Times are shown in local time with their zone: one zone, so the examples read alike
        # wherever they run.
        self.env = subprocess_env(root / "home", PATH=f"{bin_dir}:{os.environ['PATH']}", TZ="UTC")
        for name in ("REALTIME_MAX_WORKERS", "BALANCED_MAX_WORKERS", "ECO_MAX_WORKERS",
                     "STATE_DIRECTORY", "NOTIFY_SOCKET"):
            self.env.pop(name, None)
        self.groups: list[int] = []

    def bash(self, script: str) -> subprocess.CompletedProcess[str]:
        # Output goes to a file, not a pipe: a daemon an example leaves running keeps its
        # inherited stdout open, and reading a pipe would wait for it.
        output = self.work.parent / "output.txt"
        with output.open("w") as sink:
            process = subprocess.Popen(["bash", "-c", script], cwd=self.work, env=self.env,
                                       stdout=sink, stderr=subprocess.STDOUT,
                                       start_new_session=True)
        self.groups.append(process.pid)
        try:
            process.wait(timeout=BLOCK_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            self.stop()
            process.wait()
            return subprocess.CompletedProcess(process.args, -1, output.read_text()
                                               + f"\n(stopped after {BLOCK_TIMEOUT_S} s)")
        return subprocess.CompletedProcess(process.args, process.returncode, output.read_text())

    def stop(self) -> None:
        """End whatever the examples left running (a daemon started with `&`): SIGTERM to each
        block's process group, then SIGKILL to what is still there after a short grace."""
        for group in self._alive():
            os.killpg(group, signal.SIGTERM)
        deadline = time.monotonic() + 2
        while self._alive() and time.monotonic() < deadline:
            time.sleep(0.05)
        for group in self._alive():
            os.killpg(group, signal.SIGKILL)

    def logs(self) -> str:
        """The end of each log file the examples wrote (a daemon's), to say why one failed."""
        tails = [f"--- {path.name}:\n" + "\n".join(path.read_text().splitlines()[-20:])
                 for path in sorted(self.work.glob("*.log"))]
        return "\n".join(tails)

    def _alive(self) -> list[int]:
        """The examples' process groups that still have a live process.

        Read from /proc, not probed with a signal: a daemon whose starting shell has exited is
        re-parented, possibly to this test process (a subreaper once a foreground run has run
        in it), which never reaps it, and a zombie still counts as a member of its group."""
        live = set()
        for stat in Path("/proc").glob("[0-9]*/stat"):
            with contextlib.suppress(OSError):
                fields = stat.read_text().rsplit(")", 1)[1].split()
                if fields[0] != "Z":
                    live.add(int(fields[2]))
        return [group for group in self.groups if group in live]


def run_script(scratch: Scratch, block: Block) -> None:
    result = scratch.bash(f"set -eo pipefail\n{block.text}")
    assert result.returncode == 0, (
        f"{block.where} exited {result.returncode}:\n{result.stdout}\n{scratch.logs()}")


def run_console(scratch: Scratch, block: Block) -> None:
    commands = console_commands(block.text)
    script = "".join(f"{command.line}\n__status=$?; printf '\\n{STATUS_MARK}%d\\n' $__status; "
                     "(exit $__status)\n" for command in commands)
    result = scratch.bash(script)
    pieces = re.split(rf"\n{STATUS_MARK}(\d+)\n", result.stdout)
    outputs, statuses = pieces[0:-1:2], [int(status) for status in pieces[1::2]]
    assert len(statuses) == len(commands), (
        f"{block.where} stopped early:\n{result.stdout}\n{scratch.logs()}")
    for number, command in enumerate(commands):
        checked = number + 1 < len(commands) and commands[number + 1].line == "echo $?"
        assert statuses[number] == 0 or checked, (
            f"{block.where}: `{command.line}` exited {statuses[number]}:\n{outputs[number]}\n"
            f"{scratch.logs()}")
        assert output_matches(command.shown, outputs[number]), (
            f"{block.where}: `{command.line}` printed\n{outputs[number]}\n"
            f"which does not match what the document shows:\n{command.shown}")


@pytest.mark.e2e
@pytest.mark.parametrize("path", DOCUMENTS, ids=lambda path: path.name)
def test_shell_examples_run(path, tmp_path):
    scratch = Scratch(tmp_path)
    try:
        for block in read_blocks(path):
            if block.runs and block.lang == "console":
                run_console(scratch, block)
            elif block.runs:
                run_script(scratch, block)
    finally:
        scratch.stop()


# --- what the documents must hold -----------------------------------------------------------


def test_every_skipped_example_gives_a_reason():
    skipped = [block for path in DOCUMENTS for block in read_blocks(path)
               if block.skip_reason is not None]
    assert skipped, "no example is marked as skipped: has the marker's spelling changed?"
    assert [block.where for block in skipped if not block.skip_reason] == []
    assert {str(path.name): stray_skip_markers(path) for path in DOCUMENTS} == {
        str(path.name): [] for path in DOCUMENTS}


def test_shell_examples_use_a_language_the_tests_run():
    # A command example in a plain ``` fence would be skipped without anyone saying so.
    unlabelled = [block.where for path in DOCUMENTS for block in read_blocks(path)
                  if not block.lang and block.text.lstrip().startswith(("$ ", "easyflow "))]
    assert unlabelled == []


def _commands(command: Any, path: str = "") -> list[tuple[str, Any]]:
    """Every command and sub-command of a Click command tree, by its path (`workflow add`).

    Typed loosely: Typer may carry its own copy of Click, whose classes are not `click`'s."""
    found = [(path, command)] if path else []
    for name, sub in sorted(getattr(command, "commands", {}).items()):
        found += _commands(sub, f"{path} {name}".strip())
    return found


def _long_options(command: Any) -> list[str]:
    return [opt for param in command.params if param.param_type_name == "option"
            for opt in [*param.opts, *param.secondary_opts] if opt.startswith("--")]


def documented_text() -> str:
    return "\n".join(path.read_text() for path in DOCUMENTS)


@pytest.mark.parametrize("name, command", _commands(typer.main.get_command(app)),
                         ids=lambda value: value if isinstance(value, str) else "")
def test_every_command_and_option_is_documented(name, command):
    text = documented_text()
    assert f"easyflow {name}" in text, f"`easyflow {name}` is not documented"
    undocumented = [opt for opt in _long_options(command) if opt not in text]
    assert undocumented == [], f"options of `easyflow {name}`"


def test_the_command_tree_is_found():
    # An empty tree would leave the test above with no cases, and so with nothing to check.
    assert {"workflow add", "run", "schedule pause", "report pools"} <= {
        name for name, _ in _commands(typer.main.get_command(app))}


def test_the_root_options_are_documented():
    options = _long_options(typer.main.get_command(app))
    assert options, "the root command has no options: is this still the app?"
    assert [opt for opt in options if f"easyflow {opt}" not in documented_text()] == []


def test_every_configuration_key_is_documented():
    defaults = tomllib.loads((REPO / "easyflow_cli" / "defaults" / "easyflow.toml").read_text())
    text = (REPO / "docs" / "configuration.md").read_text()
    keys = [(f"pools.{mode}.{key}", f"pools.MODE.{key}")
            for mode, pool in defaults.pop("pools").items() for key in pool]
    keys += [(f"{table}.{key}",) * 2 for table, values in defaults.items() for key in values]
    assert [key for key, general in keys if f"`{key}`" not in text
            and f"`{general}`" not in text] == []


def test_workflow_examples_are_valid_workflow_files():
    examples = [block for path in DOCUMENTS for block in read_blocks(path)
                if block.lang == "toml" and "[[steps]]" in block.text]
    assert examples
    for block in examples:
        parse_workflow_text(block.text, block.where.split(":")[0])


LINK = re.compile(r"\[[^\]]*\]\((?P<target>[^)\s]+)\)")


def heading_anchors(path: Path) -> set[str]:
    """GitHub's anchors for a document's headings."""
    anchors = set()
    for line in path.read_text().splitlines():
        if line.startswith("#"):
            title = line.lstrip("#").strip().lower()
            anchors.add(re.sub(r"[^\w\- ]", "", title).replace(" ", "-"))
    return anchors


@pytest.mark.parametrize("path", DOCUMENTS, ids=lambda path: path.name)
def test_links_between_documents_resolve(path):
    broken = []
    for target in LINK.findall(path.read_text()):
        if re.match(r"[a-z]+:", target):
            continue
        file, _, anchor = target.partition("#")
        linked = (path.parent / file).resolve() if file else path
        if not linked.exists() or (anchor and anchor not in heading_anchors(linked)):
            broken.append(target)
    assert broken == []


def test_readme_links_every_document():
    readme = (REPO / "README.md").read_text()
    assert [p.name for p in DOCUMENTS[1:] if f"(docs/{p.name}" not in readme] == []


# --- the matching itself --------------------------------------------------------------------


def test_shown_output_is_matched_loosely_on_figures_but_not_on_words():
    shown = "run 12: dashboard-refresh in real-time mode (manual)\n" \
            "│ 4 │ eco │ 2026-11-26 12:06:18 │ 0.632s │ $0.000209 │"
    actual = "run 7: dashboard-refresh in real-time mode (manual)\n" \
             "│ 15 │ eco       │ 2026-12-02 04:11:58 │ 1.5s │ $0.01 │"
    assert output_matches(shown, actual)
    assert not output_matches(shown, actual.replace("real-time", "balanced"))
    assert not output_matches(shown, actual + "\none line more")
    assert output_matches("cost,0.000104,1", "cost,2.7e-05,1")


def test_an_ellipsis_line_stands_for_any_lines_and_inside_a_line_for_any_text():
    shown = "added a from …/a.toml\n…\ndone"
    assert output_matches(shown, "added a from /tmp/x/a.toml\nb\nc\ndone")
    assert output_matches(shown, "added a from /a.toml\ndone")
    assert not output_matches(shown, "added a from /tmp/x/a.toml\nb")


def test_console_blocks_split_into_commands_and_their_output():
    commands = console_commands("$ easyflow workflow add x \\\n  y\nadded\n$ echo $?\n0")
    assert commands == [Command("easyflow workflow add x \\\n  y", "added"),
                        Command("echo $?", "0")]


# --- the architecture page names what is there -------------------------------------------------


def _package_sources() -> dict[Path, str]:
    return {path: path.read_text() for path in (REPO / "easyflow_cli").rglob("*.py")}


def test_architecture_names_only_files_that_exist():
    text = (REPO / "docs" / "architecture.md").read_text()
    package = REPO / "easyflow_cli"
    names = {path.name for path in package.rglob("*.py")}
    missing = []
    for mentioned in sorted(set(re.findall(r"`([\w/]+\.py)`", text))):
        if "/" in mentioned:
            found = (package / mentioned).exists() or (REPO / mentioned).exists()
        else:
            found = mentioned in names
        if not found:
            missing.append(mentioned)
    assert missing == []


def test_architecture_names_only_classes_and_methods_that_exist():
    text = (REPO / "docs" / "architecture.md").read_text()
    source = "\n".join(_package_sources().values())
    missing = []
    for name, method in sorted(set(re.findall(r"`([A-Z][a-z]\w*)(?:\.(\w+)\(?\)?)?`", text))):
        if not re.search(rf"^class {name}\b", source, re.MULTILINE):
            missing.append(name)
        elif method and not re.search(rf"def {method}\(", source):
            missing.append(f"{name}.{method}")
    assert missing == []


def test_ci_runs_the_readme_test_command():
    ci = (REPO / ".ci" / "run").read_text()
    readme = (REPO / "README.md").read_text()
    install = re.search(r"pip install -q -e '(\.\[[\w,]+\])'", ci)
    assert install is not None and ".venv/bin/pytest -q" in ci
    assert (f"python3 -m venv .venv && .venv/bin/pip install -q -e '{install[1]}' &&"
            " .venv/bin/pytest -q") in readme
