"""A quiet machine for measurements that other work would disturb (the GUI stall tests), under pytest-xdist.

Every test (setup, call, teardown) holds a shared lock on one file per run (:func:`shared`, from ``tests/conftest.py``); a measurement
takes it exclusively (:func:`exclusive`), so it starts once the other workers' running tests have finished and they
start no other until it ends. Without xdist (``-n 0``) both do nothing. Why: on the 2-core machine a dock's longest
event-loop stall rose from ≈ 100 ms to 216 ms while the other worker computed (2026-12-01), past the allowance
napari's own first-layer stall sets.
"""

from __future__ import annotations

import fcntl
import os
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import IO

_file: IO[str] | None = None
_state = fcntl.LOCK_UN  # what this process holds now


def _lock() -> IO[str] | None:
    global _file
    run = os.environ.get("PYTEST_XDIST_TESTRUNUID")
    if run is None:
        return None
    if _file is None:
        _file = open(Path(tempfile.gettempdir()) / f"cryoforge-tests-{run}.lock", "a+")  # kept open: the lock lives with it
    return _file


def _set(state: int) -> None:
    global _state
    f = _lock()
    if f is not None and state != _state:
        fcntl.flock(f, state)  # shared ↔ exclusive converts this process's own lock
    _state = state


@contextmanager
def shared():
    """Around a test: other tests may run beside it, a measurement may not."""
    before = _state
    _set(fcntl.LOCK_SH)
    try:
        yield
    finally:
        _set(before)


def exclusive() -> int:
    """Start a measurement: wait for the other workers' running tests, hold off their next ones; returns the state to
    give back to :func:`release`."""
    before = _state
    _set(fcntl.LOCK_EX)
    return before


def release(before: int) -> None:
    _set(before)
