"""A running run's output: read on from the last read, from its log file or its chunks."""

from dataclasses import replace

from hypothesis import given
from hypothesis import strategies as st

from easyflow_cli.cli.log_view import tail_offset
from easyflow_cli.cli.run_output import ChunkOutput, FileOutput, tail_of


class Chunks:
    def __init__(self) -> None:
        self.written: list[tuple[int, bytes]] = []

    def log_chunks(self, run_id: int, *, after: int = -1) -> list[tuple[int, bytes]]:
        return [(seq, data) for seq, data in self.written if seq > after]


def test_chunks_are_read_once_each_in_order(store):
    run = store.queue.get(store.queue.enqueue([_planned()])[0])
    chunks = Chunks()
    output = ChunkOutput(chunks)
    assert output.new_output(run) == b""
    chunks.written += [(0, b"a\n"), (1, b"b")]
    assert output.new_output(run) == b"a\nb"
    assert output.new_output(run) == b""
    chunks.written.append((2, b"\n"))
    assert output.new_output(run) == b"\n"


def test_the_log_file_is_read_on_from_the_last_read(store, tmp_path):
    path = tmp_path / "run.log"
    run = store.queue.get(store.queue.enqueue([_planned()])[0])
    output = FileOutput()
    assert output.new_output(run) == b""  # not started: no log yet
    run = replace(run, log_path=str(path))
    assert output.new_output(run) == b""  # started, nothing written
    path.write_bytes(b"one\n")
    assert output.new_output(run) == b"one\n"
    with open(path, "ab") as log:
        log.write(b"two\n")
    assert output.new_output(run) == b"two\n"


@given(st.binary(max_size=40).map(lambda data: data.replace(b"x", b"\n")),
       st.integers(min_value=0, max_value=8))
def test_tail_of_counts_lines_as_the_file_tail_does(tmp_path_factory, data, lines):
    path = tmp_path_factory.mktemp("tail") / "log"
    path.write_bytes(data)
    with open(path, "rb") as log:
        assert tail_of(data, lines) == data[tail_offset(log.fileno(), lines):]


def _planned():
    from datetime import UTC, datetime

    from easyflow_cli.core.model import Trigger
    from easyflow_cli.core.planning import QueuePolicy, plan_run
    from easyflow_cli.core.spec import parse_workflow_text

    spec = parse_workflow_text('name = "w"\n[[steps]]\nrun = ["true"]\n')
    return plan_run(spec, trigger=Trigger.MANUAL, now=datetime.now(UTC),
                    policy=QueuePolicy())
