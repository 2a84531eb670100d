"""Drive a job generator: collect its result, honour cancel, turn failures into clear messages."""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Generator, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from .events import Event, Log, Metrics, Progress, Result

if TYPE_CHECKING:
    from typing import Any, TextIO



class JobError(RuntimeError):
    """A job failed; ``str(err)`` is a message meant for the user (no traceback needed)."""


class Cancelled(Exception):
    """The job was cancelled before it finished; nothing it was writing was kept."""


def drive(job: Iterator[Event], on_event: Callable[[Event], None] | None = None,
          cancel: threading.Event | None = None) -> Any:
    """Run ``job`` to the end and return its Result value.

    ``on_event`` sees every event. When ``cancel`` is set the generator is closed at its next
    yield and :class:`Cancelled` is raised. Any exception from the job becomes :class:`JobError`.
    """
    result = None
    try:
        for event in job:
            if on_event is not None:
                on_event(event)
            if isinstance(event, Result):
                result = event.value
            if cancel is not None and cancel.is_set():
                raise Cancelled("cancelled")
    except (Cancelled, KeyboardInterrupt):
        if isinstance(job, Generator):
            job.close()
        raise
    except JobError:
        raise
    except (ValueError, FileNotFoundError) as err:  # bad input: the message says it all
        raise JobError(str(err)) from err
    except Exception as err:  # noqa: BLE001 - every failure reaches the user as one clear line
        raise JobError(f"{type(err).__name__}: {err}") from err
    return result


def stage(job: Iterator[Event]) -> Generator[Event, None, Any]:
    """Run ``job`` as one stage of a larger job: ``value = yield from stage(job)`` passes its events on, all but
    its Result, whose value it returns (None when the job ended without one)."""
    result = None
    for event in job:
        if isinstance(event, Result):
            result = event.value
        else:
            yield event
    return result


class _Bar:
    """A plain-text progress bar on a stream (redrawn in place on a terminal)."""

    def __init__(self, stream, width: int = 30):
        self.stream, self.width = stream, width
        self.start = time.monotonic()
        self.tty = hasattr(stream, "isatty") and stream.isatty()
        self.last_line = 0.0

    def draw(self, p: Progress):
        now = time.monotonic()
        done = p.step >= p.total
        if not self.tty and not done and now - self.last_line < 2.0:
            return
        self.last_line = now
        frac = 0.0 if p.total <= 0 else min(max(p.step / p.total, 0.0), 1.0)
        fill = int(round(frac * self.width))
        elapsed = now - self.start
        eta = elapsed / frac - elapsed if frac > 0 else float("nan")
        text = (f"[{'#' * fill}{'.' * (self.width - fill)}] {p.step}/{p.total} {p.message}"
                f"  {elapsed:.1f}s" + (f" eta {eta:.1f}s" if frac > 0 and not done else ""))
        self.stream.write(("\r" + text + "\x1b[K") if self.tty else text + "\n")
        if self.tty and done:
            self.stream.write("\n")
        self.stream.flush()


_STOP_ASKED = threading.Event()  # a stop signal arrived while a job ran in the terminal (see stop_asked)


def stop_asked() -> bool:
    """Whether Ctrl-C or SIGTERM asked the job running in the terminal to stop. A job of several processes asks all
    of them (:func:`cryoforge.jobs.distributed.any_rank`) so that they stop after the same step."""
    return _STOP_ASKED.is_set()


@contextmanager
def stop_signals(cancel: threading.Event, stream: TextIO) -> Iterator[None]:
    """While inside, Ctrl-C (SIGINT) and SIGTERM set ``cancel`` instead of interrupting: the job finishes the step
    it is in and stops at its next yield, so what it saves is consistent. A second Ctrl-C interrupts at once.
    Only the main thread can take signals; elsewhere this does nothing."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum, frame):
        if cancel.is_set() and signum == signal.SIGINT:
            raise KeyboardInterrupt
        cancel.set()
        _STOP_ASKED.set()
        stream.write(f"\n  stopping after the current step ({signal.Signals(signum).name}; Ctrl-C again to stop now)\n")
        stream.flush()

    old = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    _STOP_ASKED.clear()
    try:
        yield
    finally:
        _STOP_ASKED.clear()
        for sig, h in old.items():
            signal.signal(sig, h)


def run_cli(job: Iterator[Event], stream: TextIO | None = None, show_metrics: bool = True) -> Any:
    """Run ``job`` in the terminal with a progress bar; returns its Result value.

    Ctrl-C or SIGTERM cancels: the job ends the step it is in, stops at its next yield (a trainer then saves its
    checkpoint), and :class:`Cancelled` is raised (:func:`stop_signals`). Under ``torchrun`` only rank 0 draws.
    """
    if stream is None:
        from .distributed import World

        stream = sys.stderr if World.from_env().main else open(os.devnull, "w")  # noqa: SIM115 - lives with the run
    bar = _Bar(stream)

    def render(event: Event):
        if isinstance(event, Progress):
            bar.draw(event)
        elif isinstance(event, Metrics) and show_metrics:
            vals = "  ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in event.values.items())
            stream.write(("\n" if bar.tty else "") + f"  {vals}\n")
        elif isinstance(event, Log):
            stream.write(("\n" if bar.tty else "") + f"  [{event.level}] {event.message}\n")

    cancel = threading.Event()
    with stop_signals(cancel, stream):
        return drive(job, render, cancel)
