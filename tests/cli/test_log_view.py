"""A run's log on the terminal: control characters visible, text otherwise as written."""

from __future__ import annotations

import io

from easyflow_cli.cli import log_view
from easyflow_cli.cli.log_view import copy_log, escape_controls, escaped, tail_offset


def test_every_control_character_but_tab_and_newline_is_escaped():
    text = "".join(chr(code) for code in range(0xA0))
    shown = escape_controls(text)
    assert {ch for ch in shown if not ch.isprintable()} == {"\t", "\n"}
    assert "\\x1b" in shown and "\\x0d" in shown and "\\x7f" in shown and "\\x9b" in shown
    assert "\\x09" not in shown and "\\x0a" not in shown


def test_printable_text_is_unchanged():
    text = "naïve café ✓ 日本語 \\x1b stays as typed\n\tindented\n"
    assert escape_controls(text) == text


def test_a_character_split_between_chunks_stays_whole_and_bad_bytes_are_shown():
    data = "é\x1b[1m✓".encode()
    chunks = [data[i:i + 1] for i in range(len(data))] + [b"\xff\n"]
    assert b"".join(escaped(iter(chunks))).decode() == "é\\x1b[1m✓\\xff\n"


def test_raw_copies_the_bytes(tmp_path):
    path = tmp_path / "1.log"
    data = b"\x1b[31mred\x1b[0m\r\n\xff"
    path.write_bytes(data)
    out = io.BytesIO()
    copy_log(path, out, raw=True)
    assert out.getvalue() == data


def test_tail_offset_finds_the_last_lines_reading_backwards(tmp_path, monkeypatch):
    monkeypatch.setattr(log_view, "CHUNK_BYTES", 4)  # lines cross the blocks read
    path = tmp_path / "2.log"
    for data in (b"one\ntwo\nthree\n", b"one\ntwo\nthree"):
        path.write_bytes(data)
        with open(path, "rb") as log:
            fd = log.fileno()
            assert [data[tail_offset(fd, n):] for n in (0, 1, 2)] == [
                b"", data[8:], data[4:]]
            assert tail_offset(fd, 3) == tail_offset(fd, 50) == 0
    path.write_bytes(b"")
    with open(path, "rb") as log:
        assert tail_offset(log.fileno(), 5) == 0


def test_copy_log_with_lines_gives_only_the_last_ones(tmp_path):
    path = tmp_path / "3.log"
    path.write_bytes(b"".join(b"line %d\n" % i for i in range(1000)))
    out = io.BytesIO()
    copy_log(path, out, raw=False, lines=2)
    assert out.getvalue() == b"line 998\nline 999\n"
