"""Run any engine job (a generator of cryoforge.jobs events) in a napari worker thread.

Events are delivered on the GUI thread: Progress advances a napari progress bar (activity dock),
Preview/Metrics/Log go to the caller's callbacks, Result to ``on_result``. Cancel is cooperative: the
relay closes the job at its next yield (GeneratorExit there), so files written with
``cryoforge.io.atomic_path`` are not left half-written; the GUI stays responsive throughout.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator

from ._notify import describe, report_error, report_info


def _relay(job: Iterator, cancel: threading.Event):
    try:
        for event in job:
            yield event
            if cancel.is_set():
                break
    finally:
        job.close()


class JobHandle:
    """A running job: ``cancel()``, ``running``, ``cancelled``; ``worker`` is napari's GeneratorWorker."""

    def __init__(self, job: Iterator, description: str, on_event: Callable | None, on_result: Callable | None,
                 on_finish: Callable | None):
        from napari.qt.threading import create_worker
        from napari.utils import progress

        self._cancel = threading.Event()
        self.cancelled = False
        self.running = True
        self.error: BaseException | None = None
        self.result = None
        self.description = description
        self._on_event, self._on_result, self._on_finish = on_event, on_result, on_finish
        self.pbar = progress(total=0, desc=description)
        self.worker = create_worker(_relay, job, self._cancel, _start_thread=False, _ignore_errors=True)
        self.worker.yielded.connect(self._handle)
        self.worker.errored.connect(self._errored)
        self.worker.finished.connect(self._finished)
        self.worker.start()

    def cancel(self) -> None:
        """Ask the job to stop at its next yield."""
        if self.running:
            self.cancelled = True
            self._cancel.set()
            self.pbar.set_description(f"{self.description} (cancelling…)")

    def _handle(self, event) -> None:
        from cryoforge.jobs import Progress, Result

        if isinstance(event, Progress):
            if self.pbar.total != event.total:
                self.pbar.total = event.total
            self.pbar.update(int(event.step) - self.pbar.n)
            self.pbar.set_description(f"{self.description}: {event.message}" if event.message else self.description)
        elif isinstance(event, Result):
            self.result = event.value
            if self._on_result is not None and not self._cancel.is_set():
                self._on_result(event.value)
        if self._on_event is not None:
            self._on_event(event)

    def _errored(self, err: BaseException) -> None:
        self.error = err
        report_error(f"{self.description} failed: {describe(err)}")

    def _finished(self) -> None:
        self.running = False
        self.pbar.close()
        if self.cancelled:
            report_info(f"{self.description}: cancelled")
        if self._on_finish is not None:
            self._on_finish(self)


def start_job(job: Iterator, description: str, on_event: Callable | None = None,
              on_result: Callable | None = None, on_finish: Callable | None = None) -> JobHandle:
    """Start ``job`` in a worker thread and return its :class:`JobHandle`."""
    return JobHandle(job, description, on_event, on_result, on_finish)
