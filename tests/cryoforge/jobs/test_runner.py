"""Tests of :mod:`cryoforge.jobs.runner`."""

import io
import threading

import pytest

from cryoforge.io import atomic_path
from cryoforge.jobs import Cancelled, JobError, Metrics, Progress, Result, drive, run_cli


def writing_job(path, steps=5):
    """A job that writes its output atomically at the end of its steps."""
    with atomic_path(path) as tmp:
        for i in range(steps):
            tmp.write_text(f"partial {i}\n")
            yield Progress(i + 1, steps, f"step {i + 1}")
        yield Metrics({"loss": 0.25})
    yield Result(str(path))


def test_drive_returns_result_and_writes(tmp_path):
    events = []
    out = drive(writing_job(tmp_path / "out.txt"), events.append)
    assert out == str(tmp_path / "out.txt") and (tmp_path / "out.txt").exists()
    assert [e.step for e in events if isinstance(e, Progress)] == [1, 2, 3, 4, 5]


def test_cancel_stops_at_next_yield_and_leaves_no_partial_file(tmp_path):
    cancel = threading.Event()
    seen = []

    def on_event(e):
        seen.append(e)
        if isinstance(e, Progress) and e.step == 2:
            cancel.set()

    with pytest.raises(Cancelled):
        drive(writing_job(tmp_path / "out.txt", steps=100), on_event, cancel)
    assert len([e for e in seen if isinstance(e, Progress)]) == 2
    assert list(tmp_path.iterdir()) == []  # neither the output nor a temp file


def test_job_exception_becomes_clear_error():
    def bad():
        yield Progress(0, 1)
        raise ZeroDivisionError("division by zero in shell 3")

    with pytest.raises(JobError, match="ZeroDivisionError: division by zero in shell 3"):
        drive(bad())


def test_run_cli_renders_progress_and_metrics(tmp_path):
    buf = io.StringIO()
    run_cli(writing_job(tmp_path / "o.txt"), stream=buf)
    text = buf.getvalue()
    assert "[" + "#" * 30 + "] 5/5 step 5" in text and "loss=0.25" in text
