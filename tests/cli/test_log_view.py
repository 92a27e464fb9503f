"""A run's log on the terminal: control characters visible, text otherwise as written."""

from __future__ import annotations

import io

from easyflow_cli.cli.log_view import copy_log, escape_controls, escaped


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
