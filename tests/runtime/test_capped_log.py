import io

from easyflow_cli.runtime.capped_log import CappedLog


def test_capped_log_counts():
    sink = io.BytesIO()
    capped = CappedLog(sink, 5)
    capped.write(b"abc")
    capped.write(b"defgh")
    assert sink.getvalue() == b"abcde" and capped.dropped == 3


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
