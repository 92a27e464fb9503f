"""The run log's cap: the head as it comes, a bounded tail in memory, the tail and a marker at the
end."""

import io

import pytest

from easyflow_cli.runtime.capped_log import TAIL_MAX_BYTES, CappedLog, Tail


def test_under_the_cap_everything_goes_to_the_file_as_it_comes():
    sink = io.BytesIO()
    capped = CappedLog(sink, 100)
    capped.write(b"abc\n")
    capped.note("step 'x' exited with code 3")
    capped.close()
    assert sink.getvalue() == b"abc\n[easyflow] step 'x' exited with code 3\n"


def test_over_the_cap_the_head_and_the_tail_are_kept_with_the_middle_counted():
    sink = io.BytesIO()
    capped = CappedLog(sink, 40)  # head 20, tail 20
    for number in range(100):
        capped.write(f"line {number:03}\n".encode())  # 9 bytes each
    head = b"line 000\nline 001\nli"
    assert sink.getvalue().startswith(head)
    assert sink.getvalue()[len(head):].startswith(b"\n[easyflow] log limit of 40 bytes reached")
    assert b"line 099" not in sink.getvalue()  # the tail is held until the run ends
    capped.note("end")
    capped.close()
    # 900 bytes written, 20 in the head; the tail's last 20 are " 099\n[easyflow] end\n",
    # kept from its first whole line: the rest of the 880 + 15 bytes is dropped.
    assert sink.getvalue().endswith("bytes follow when the run ends\n"
                                    "[easyflow] [… 880 bytes dropped …]\n"
                                    "[easyflow] end\n".encode())


def test_the_tail_keeps_the_last_bytes_and_counts_the_rest():
    tail = Tail(10)
    for piece in (b"0123456789", b"abc", b"defghijklmnop", b"q"):
        tail.add(piece)
    data, dropped = tail.take()
    assert (data, dropped) == (b"hijklmnopq", 17)
    assert tail.take() == (b"", 0)


def test_the_tail_starts_at_a_whole_line_unless_it_holds_none():
    tail = Tail(10)
    tail.add(b"first\nsecond\nthird\n")
    assert tail.take() == (b"third\n", 13)
    tail.add(b"aaaa\n" * 4)  # the bytes let go end a line: nothing more to cut
    assert tail.take() == (b"aaaa\naaaa\n", 10)
    tail.add(b"x" * 30)
    assert tail.take() == (b"x" * 10, 20)


def test_a_huge_write_costs_no_more_memory_than_the_tail():
    capped = CappedLog(io.BytesIO(), 64 * TAIL_MAX_BYTES)
    assert capped.tail.size == TAIL_MAX_BYTES  # at most this, whatever the cap
    capped.write(b"y" * (64 * TAIL_MAX_BYTES))
    for _ in range(8):
        capped.write(b"z" * (TAIL_MAX_BYTES // 3))
    assert capped.tail.held == TAIL_MAX_BYTES
    assert sum(map(len, capped.tail.chunks)) == TAIL_MAX_BYTES


def test_echo_gets_everything_and_a_failing_file_is_reported_not_raised():
    class Full(io.RawIOBase):
        def writable(self) -> bool:
            return True

        def write(self, data: object) -> int:
            raise OSError(28, "No space left on device")

    echo = io.BytesIO()
    capped = CappedLog(Full(), 1024, echo)  # type: ignore[arg-type]
    capped.write(b"x" * 2000)
    capped.close()
    assert echo.getvalue() == b"x" * 2000
    assert capped.failure == "No space left on device"


@pytest.mark.parametrize("limit", [1, 2, 3])
def test_a_tiny_cap_still_counts_what_it_drops(limit: int):
    sink = io.BytesIO()
    capped = CappedLog(sink, limit)
    capped.write(b"abcdef")
    capped.close()
    assert sink.getvalue().startswith(b"abcdef"[:limit - limit // 2])
    assert f"[… {6 - limit:,} bytes dropped …]".encode() in sink.getvalue()


def masked(chunks, secrets):
    sink = io.BytesIO()
    capped = CappedLog(sink, 1 << 20, secrets=secrets)
    for chunk in chunks:
        capped.write(chunk)
    capped.close_step()
    return sink.getvalue()


def test_a_secret_is_masked_wherever_the_chunks_split_it():
    text = b"token=s3cr3t-value; again s3cr3t-value!\n"
    for cut in range(len(text) + 1):
        for second in range(cut, len(text) + 1):
            chunks = [text[:cut], text[cut:second], text[second:]]
            assert masked(chunks, ["s3cr3t-value"]) == b"token=***; again ***!\n"


def test_a_possible_secret_start_is_written_once_the_step_ends():
    assert masked([b"ends with s3c"], ["s3cr3t"]) == b"ends with s3c"


def test_the_longest_secret_wins_and_short_values_are_not_masked():
    assert masked([b"abcdef abcd 1 2"], ["abcd", "abcdef", "1"]) == b"*** *** 1 2"


def test_echo_is_masked_too():
    echo = io.BytesIO()
    capped = CappedLog(io.BytesIO(), 100, echo, secrets=["hunter22"])
    capped.write(b"pw hunter")
    capped.write(b"22\n")
    capped.note("done")
    assert echo.getvalue() == b"pw ***\n[easyflow] done\n"


def test_the_tail_is_masked_too():
    sink = io.BytesIO()
    capped = CappedLog(sink, 1024, secrets=["hunter22"])
    capped.write(b"x" * 4096 + b"\nthe password is hunter")
    capped.write(b"22\n")
    capped.close()
    assert sink.getvalue().endswith(b"dropped \xe2\x80\xa6]\nthe password is ***\n")
    assert b"hunter" not in sink.getvalue()
