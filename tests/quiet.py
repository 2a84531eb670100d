"""A quiet machine for measurements that other work would disturb (the GUI stall tests), under pytest-xdist.

Every test (setup, call, teardown) holds a shared lock on one file per run (:func:`shared`, from ``tests/conftest.py``); a measurement
takes it exclusively (:func:`exclusive`), so it starts once the other workers' running tests have finished and they
start no other until it ends. Without xdist (``-n 0``) both do nothing. Why: on the 2-core machine a dock's longest
event-loop stall rose from ≈ 100 ms to 216 ms while the other worker computed (2026-12-01), past the allowance
napari's own first-layer stall sets.

A second file, the gate, gives a waiting measurement priority: ``flock`` lets new shared holders in while an
exclusive request waits, so the other worker's next tests kept starting and a 2.5 s GUI test waited 83–92 s in CI
(2026-12-02). A test now passes the gate (shared, held only while it takes its lock); a measurement holds the gate
exclusively from before it waits until it ends, so no test starts in between. It lets go of its own shared lock
before asking for the gate, so two measurements on two workers take turns instead of each holding what the other
waits for.

How long the measurements waited, and for which test, ends up in the run's summary (:func:`wait_summary`, the
``quiet lock:`` lines): that is what ``tests/conftest.py``'s order of the files keeps short.
"""

from __future__ import annotations

import fcntl
import os
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path
from typing import IO

_files: dict[str, IO[str]] = {}
_state = fcntl.LOCK_UN  # what this process holds on the lock now
WAITS: list[tuple[float, str]] = []  # (seconds a measurement waited, what the other workers were running then)


def _open(kind: str) -> IO[str] | None:
    run = os.environ.get("PYTEST_XDIST_TESTRUNUID")
    if run is None:
        return None
    if kind not in _files:  # kept open: the lock lives with it
        _files[kind] = open(Path(tempfile.gettempdir()) / f"cryoforge-tests-{run}.{kind}", "a+")
    return _files[kind]


def _set(state: int) -> None:
    global _state
    f = _open("lock")
    if f is not None and state != _state:
        fcntl.flock(f, state)  # shared ↔ exclusive converts this process's own lock
    _state = state


def _gate(state: int) -> None:
    f = _open("gate")
    if f is not None:
        fcntl.flock(f, state)


def _running_path(worker: str) -> Path:
    return Path(tempfile.gettempdir()) / f"cryoforge-tests-{os.environ['PYTEST_XDIST_TESTRUNUID']}.{worker}.running"


def _others_running() -> str:
    """The test each other worker started last (what a measurement is about to wait for, unless it has ended)."""
    me = os.environ.get("PYTEST_XDIST_WORKER", "")
    names = []
    for f in sorted(_running_path("*").parent.glob(_running_path("*").name)):
        if not f.name.endswith(f".{me}.running"):
            try:
                names.append(f.read_text().strip())
            except OSError:
                pass
    return ", ".join(n for n in names if n) or "nothing"


@contextmanager
def shared(test: str = ""):
    """Around a test: other tests may run beside it, a measurement may not (nor may it start while one waits).
    ``test`` (its node id) is recorded while it runs, for a waiting measurement's report (:data:`WAITS`)."""
    worker = os.environ.get("PYTEST_XDIST_WORKER")
    if worker and os.environ.get("PYTEST_XDIST_TESTRUNUID") and test:
        _running_path(worker).write_text(test)
    before = _state
    if before == fcntl.LOCK_UN:
        _gate(fcntl.LOCK_SH)  # waits while a measurement waits or runs
        try:
            _set(fcntl.LOCK_SH)
        finally:
            _gate(fcntl.LOCK_UN)
    else:
        _set(fcntl.LOCK_SH)
    try:
        yield
    finally:
        _set(before)


def exclusive() -> int:
    """Start a measurement: wait for the other workers' running tests, hold off their next ones; returns the state to
    give back to :func:`release`."""
    before = _state
    others = _others_running() if _open("lock") is not None else ""
    t0 = time.perf_counter()
    _set(fcntl.LOCK_UN)  # first let go, so another worker's measurement waiting for the gate is not blocked by us
    _gate(fcntl.LOCK_EX)
    _set(fcntl.LOCK_EX)
    if others:
        WAITS.append((time.perf_counter() - t0, others))
    return before


def wait_summary() -> list[str]:
    """A line on how long this process's measurements waited for the other workers, the longest wait named."""
    if not WAITS:
        return []
    longest = max(WAITS)
    return [f"quiet lock: {len(WAITS)} measurements waited {sum(w for w, _ in WAITS):.1f} s in all; the longest "
            f"{longest[0]:.1f} s, for {longest[1]}"]


def release(before: int) -> None:
    _set(before)
    _gate(fcntl.LOCK_UN)
