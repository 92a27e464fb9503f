import io

from easyflow_cli.runtime.capped_log import CappedLog


def test_capped_log_counts():
    sink = io.BytesIO()
    capped = CappedLog(sink, 5)
    capped.write(b"abc")
    capped.write(b"defgh")
    assert sink.getvalue() == b"abcde" and capped.dropped == 3
