"""Run any engine job (a generator of cryoforge.jobs events) in a napari worker thread.

Events are delivered on the GUI thread: Progress advances a napari progress bar (activity dock),
Preview/Metrics/Log go to the caller's callbacks, Result to ``on_result``. Cancel is cooperative: the
relay closes the job at its next yield (GeneratorExit there), so files written with
``cryoforge.io.atomic_path`` are not left half-written; the GUI stays responsive throughout.

Showing a result can itself stop the GUI: adding an image layer costs 20–80 ms and the canvas repaints after it.
Every event reaches its handler in an event-loop turn of its own (several queued previews are not handled in one
go); a handler that shows several things is written as a generator that yields between them, and :func:`in_turns`
runs it one step per turn (repaints and input in between). A job counts as finished once all it yielded is shown.
The job waits at each event other than Progress until the GUI has shown it (its turns and the repaints they asked
for): on a machine with few cores a job computing beside the GUI halves the GUI's share of the interpreter, and a
first plot took 115–135 ms instead of 50.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Generator, Iterator

from ._notify import describe, report_error, report_info


def _relay(job: Iterator, cancel: threading.Event, shown: threading.Semaphore):
    from cryoforge.jobs import Progress

    try:
        for event in job:
            yield event
            if not isinstance(event, Progress):  # wait while the GUI shows it; at most 2 s (a closed viewer shows
                deadline = time.monotonic() + 2.0  # nothing, and its job must still end)
                while not shown.acquire(timeout=0.05) and not cancel.is_set() and time.monotonic() < deadline:
                    pass
            if cancel.is_set():
                break
    finally:
        job.close()


class _Turns:
    """Generators stepped one step per event-loop turn, first queued first finished.

    napari calls ``processEvents`` inside its own work (a progress bar's update, a new layer's controls); a step is
    never run from such a nested loop (``busy``), only from the event loop itself, so two steps never run back to
    back without the loop (repaints, input) in between."""

    def __init__(self):
        self.queue: deque[Generator] = deque()
        self.armed = False
        self.busy = 0

    def add(self, steps: Generator) -> None:
        self.queue.append(steps)
        self._arm()

    def _arm(self, delay_ms: int = 1) -> None:  # a timer: 0 would be a posted event, run in one batch with the next
        from qtpy.QtCore import QTimer

        if self.queue and not self.armed:
            self.armed = True
            QTimer.singleShot(delay_ms, self._step)

    def _step(self) -> None:
        self.armed = False
        if self.busy:  # called from a loop nested in other GUI work: later
            self._arm(5)
            return
        self.busy += 1
        try:
            next(self.queue[0])
        except StopIteration:
            self.queue.popleft()
        except Exception as err:  # a display step failed: say so, go on with the others
            self.queue.popleft()
            report_error(f"Showing a result failed: {describe(err)}")
        finally:
            self.busy -= 1
        self._arm()


_TURNS = _Turns()


def in_turns(steps) -> None:
    """Run ``steps`` (a generator; anything else is ignored) one step per event-loop turn, after those queued
    before it."""
    if isinstance(steps, Generator):
        _TURNS.add(steps)


def _turn_of(handler: Callable, arg):
    """``handler(arg)`` as steps: the call, then the rest of what it returned when that is a generator."""
    out = handler(arg)
    yield from out if isinstance(out, Generator) else ()


def _release_after_repaint(shown: threading.Semaphore):
    yield  # the repaints the handler asked for (draw_idle, layer updates) run before the next turn
    shown.release()


def at_once(steps) -> None:
    """Run ``steps`` (a generator, or the None a plain function returns) to its end now: a click that must answer
    before the next line, or a test."""
    if isinstance(steps, Generator):
        for _ in steps:
            pass


class JobHandle:
    """A running job: ``cancel()``, ``running``, ``cancelled``; ``worker`` is napari's GeneratorWorker."""

    def __init__(self, job: Iterator, description: str, on_event: Callable | None, on_result: Callable | None,
                 on_finish: Callable | None):
        from napari.qt.threading import create_worker
        from napari.utils import progress

        self._cancel = threading.Event()
        self._shown = threading.Semaphore(0)
        self.cancelled = False
        self.running = True
        self.error: BaseException | None = None
        self.result = None
        self.description = description
        self._on_event, self._on_result, self._on_finish = on_event, on_result, on_finish
        self._when_shown: list[Callable[[], None]] = []
        self.pbar = progress(total=0, desc=description)
        self.worker = create_worker(_relay, job, self._cancel, self._shown, _start_thread=False, _ignore_errors=True)
        self.worker.yielded.connect(self._handle)
        self.worker.errored.connect(self._errored)
        self.worker.finished.connect(self._finished)
        self.worker.start()

    def when_shown(self, callback: Callable[[], None]) -> None:
        """Call ``callback()`` once the job has finished and all it yielded is shown (its worker's ``finished``
        signal comes before that: results are shown in later event-loop turns)."""
        if self.running:
            self._when_shown.append(callback)
        else:
            callback()

    def cancel(self) -> None:
        """Ask the job to stop at its next yield."""
        if self.running:
            self.cancelled = True
            self._cancel.set()
            self.pbar.set_description(f"{self.description} (cancelling…)")

    def _handle(self, event) -> None:
        _TURNS.busy += 1  # napari's progress bar runs a nested event loop
        try:
            self._handle_now(event)
        finally:
            _TURNS.busy -= 1

    def _handle_now(self, event) -> None:
        from cryoforge.jobs import Progress, Result

        if isinstance(event, Progress):
            if self.pbar.total != event.total:
                self.pbar.total = event.total
            self.pbar.update(int(event.step) - self.pbar.n)
            self.pbar.set_description(f"{self.description}: {event.message}" if event.message else self.description)
            return
        if isinstance(event, Result):
            self.result = event.value
            if self._on_result is not None and not self._cancel.is_set():
                in_turns(_turn_of(self._on_result, event.value))
        if self._on_event is not None:
            in_turns(_turn_of(self._on_event, event))
        in_turns(_release_after_repaint(self._shown))  # the job goes on once this event is shown

    def _errored(self, err: BaseException) -> None:
        self.error = err
        report_error(f"{self.description} failed: {describe(err)}")

    def _finished(self) -> None:
        in_turns(_turn_of(self._finish, None))  # after what the job's events queued to be shown

    def _finish(self, _) -> None:
        self.running = False
        self.pbar.close()
        if self.cancelled:
            report_info(f"{self.description}: cancelled")
        if self._on_finish is not None:
            self._on_finish(self)
        for callback in self._when_shown:
            callback()


def start_job(job: Iterator, description: str, on_event: Callable | None = None,
              on_result: Callable | None = None, on_finish: Callable | None = None) -> JobHandle:
    """Start ``job`` in a worker thread and return its :class:`JobHandle`."""
    return JobHandle(job, description, on_event, on_result, on_finish)
