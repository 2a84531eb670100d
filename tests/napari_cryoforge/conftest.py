"""Fixtures for the napari plugin tests (pytest-qt + napari's make_napari_viewer)."""

import pytest


@pytest.fixture
def notifications():
    """Every napari notification (errors, warnings, info) emitted during the test, as (severity, message)."""
    from napari.utils.notifications import notification_manager

    seen = []

    def collect(n):
        seen.append((str(n.severity), str(n.message)))

    notification_manager.notification_ready.connect(collect)
    yield seen
    notification_manager.notification_ready.disconnect(collect)


@pytest.fixture
def docked(make_napari_viewer, qtbot):
    """``dock(widget_class, sample=None)`` → ``(viewer, widget)``: a viewer (with that napari-cryoforge sample)
    and the widget docked; running jobs are cancelled and awaited at teardown."""
    widgets = []

    def dock(widget_class, sample=None):
        viewer = make_napari_viewer()
        if sample:
            viewer.open_sample("napari-cryoforge", sample)
        widget = widget_class(viewer)
        viewer.window.add_dock_widget(widget)
        widgets.append(widget)
        return viewer, widget

    yield dock
    for widget in widgets:
        if widget.job is not None and widget.job.running:
            widget.cancel()
            qtbot.waitUntil(lambda w=widget: not w.job.running, timeout=60000)


@pytest.fixture
def inspector(docked):
    """A viewer holding the sample data with the Volume inspector docked."""
    from napari_cryoforge.widgets.inspector import VolumeInspector

    return docked(VolumeInspector, "phantom")


@pytest.fixture
def wait_job(qtbot):
    """``wait_job(widget, timeout_ms)``: wait until the widget's background job has started and finished."""

    def wait(w, timeout=120000):
        qtbot.waitUntil(lambda: w.job is not None and not w.job.running, timeout=timeout)

    return wait


STALLS: dict[str, float] = {}  # dock → longest event-loop stall (ms) while its main job ran; printed at the end


class StallMeter:
    """A 10 ms timer on the Qt event loop; the longest gap between its ticks, less the interval, is how long the GUI
    could not answer (``stall_ms``). Started and stopped around a dock's job."""

    interval_ms = 10

    def __init__(self):
        from qtpy.QtCore import QTimer

        self.timer = QTimer()
        self.timer.setInterval(self.interval_ms)
        self.timer.timeout.connect(self._tick)
        self.last = None
        self.worst = 0.0

    def _tick(self):
        import time

        now = time.perf_counter()
        if self.last is not None:
            self.worst = max(self.worst, 1000 * (now - self.last) - self.interval_ms)
        self.last = now

    def start(self):
        self.last, self.worst = None, 0.0
        self.timer.start()
        return self

    def stop(self, dock: str) -> float:
        self.timer.stop()
        STALLS[dock] = max(STALLS.get(dock, 0.0), self.worst)
        return self.worst


@pytest.fixture
def stall_meter(qtbot):
    """A :class:`StallMeter` (not started)."""
    meter = StallMeter()
    yield meter
    meter.timer.stop()


def pytest_terminal_summary(terminalreporter):
    if STALLS:
        terminalreporter.write_line("longest event-loop stall while each dock's main job ran: " + ", ".join(
            f"{dock} {ms:.0f} ms" for dock, ms in sorted(STALLS.items())))

STALL_GOAL_MS = 100  # issue 29: the GUI should never stop answering longer than this while a dock's job runs
# What the tests allow for now: twice the worst stall measured on the idle 2-core machine (2026-11-30, two runs:
# explorer 49–52 ms, FSC 61–263, align 141–155, QA 161–163, hypothesis test 160–186, Multi-CryoGAN 192–193,
# simulate 196–202). These are first runs: the result handlers create the docks' result layers (50–100 ms per new
# image layer, 460 ms for the first layer of a fresh viewer) and matplotlib repaints on the GUI thread. Repeated, a
# job updates its layers in place: aligning a pair three times stalled 148, 13 and 13 ms. The jobs' own computation
# in the worker stalls the loop by ≤ 6 ms (a 2 000-rotation search measured beside the timer).
STALL_MS = 400
