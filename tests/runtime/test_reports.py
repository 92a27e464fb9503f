from datetime import UTC, datetime, time
from types import SimpleNamespace

from easyflow_cli.core.offpeak import parse_window
from easyflow_cli.runtime.daemon.reports import WorkerReports
from easyflow_cli.runtime.recording import Batch


def reports_with_window(text: str) -> WorkerReports:
    config = SimpleNamespace(tariff_window=parse_window(text))
    recorder = SimpleNamespace(batch=Batch())
    clock = SimpleNamespace(monotonic=lambda: 0.0)
    return WorkerReports(None, recorder, clock, config, None,  # type: ignore[arg-type]
                         log_path=lambda run_id: f"/logs/{run_id}.log")


def start_at(reports: WorkerReports, run_id: int, at: float) -> bool | None:
    run = SimpleNamespace(enqueued_at=datetime.fromtimestamp(at - 1, UTC))
    assignment = SimpleNamespace(run_id=run_id, run=run, started=False)
    reports.on_started(SimpleNamespace(pid=7), assignment, at)  # type: ignore[arg-type]
    return reports.recorder.batch.starts[-1].off_peak


def local_today_at(hour: int) -> float:
    """The moment the local clock shows `hour`:00 today, in seconds since the epoch."""
    return datetime.combine(datetime.now().date(), time(hour)).astimezone().timestamp()


def test_starts_on_either_side_of_the_window_edge_get_their_own_flag():
    reports = reports_with_window("22:00-06:00")
    edge = local_today_at(22)
    moments = [edge - 0.6, edge - 0.3, edge - 0.000001, edge, edge + 0.4, edge + 0.9, edge + 1]
    assert [start_at(reports, n, at) for n, at in enumerate(moments)] == [
        False, False, False, True, True, True, True]


def test_a_window_changed_by_a_reload_is_asked_again_within_the_same_second():
    reports = reports_with_window("22:00-06:00")
    noon = local_today_at(12)
    assert start_at(reports, 1, noon + 0.1) is False
    reports.config = SimpleNamespace(tariff_window=parse_window("11:00-13:00"))
    assert start_at(reports, 2, noon + 0.2) is True
    reports.config = SimpleNamespace(tariff_window=None)
    assert start_at(reports, 3, noon + 0.3) is None
