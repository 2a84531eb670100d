"""Fixtures for the napari plugin tests (pytest-qt + napari's make_napari_viewer)."""

import pytest

from tests.quiet import exclusive, release


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
        self.quiet: int | None = None  # the lock state start() took over (tests/quiet.py)

    def _tick(self):
        import time

        now = time.perf_counter()
        if self.last is not None:
            self.worst = max(self.worst, 1000 * (now - self.last) - self.interval_ms)
        self.last = now

    def start(self):
        import gc

        gc.collect()
        gc.freeze()  # as `cryoforge view` does after startup (napari_cryoforge.launch.freeze_startup_objects)
        self.quiet = exclusive()  # no other xdist worker's test runs meanwhile (tests/quiet.py)
        self.last, self.worst = None, 0.0
        self.timer.start()
        return self

    def stop(self, dock: str | None) -> float:
        """Stop; the longest stall (ms), kept for the summary under ``dock`` (None: not kept)."""
        import gc

        self.timer.stop()
        if self.quiet is not None:
            release(self.quiet)
            self.quiet = None
        gc.unfreeze()
        if dock is not None:
            STALLS[dock] = max(STALLS.get(dock, 0.0), self.worst)
        return self.worst


NAPARI_FIRST_LAYER: list[float] = []  # napari's own stall showing a first 32³ image in a fresh viewer (ms), measured


def napari_first_layer_ms(make_napari_viewer, qtbot, runs: int = 3) -> float:
    """The longest stall (ms) napari itself makes when a first 32³ image layer is added to a fresh viewer (dims
    sliders, the vispy node, the layer's controls, a repaint): measured once per process, after one unmeasured add
    (a process's first layer also loads shaders and lazy imports: 600 ms)."""
    if not NAPARI_FIRST_LAYER:
        import numpy as np
        from qtpy.QtCore import QTimer

        data = np.random.default_rng(0).random((32, 32, 32), dtype=np.float32)
        for i in range(runs + 1):
            viewer = make_napari_viewer()
            meter = StallMeter().start()
            qtbot.wait(50)
            QTimer.singleShot(0, lambda v=viewer: v.add_image(data, scale=(12.0, 12.0, 12.0)))
            qtbot.waitUntil(lambda v=viewer: len(v.layers) == 1, timeout=10000)
            qtbot.wait(200)  # its repaint
            worst = meter.stop(None)
            if i:
                NAPARI_FIRST_LAYER.append(worst)
    return max(NAPARI_FIRST_LAYER)


@pytest.fixture
def stall_meter(make_napari_viewer, qtbot):
    """A :class:`StallMeter` (not started) whose ``allowance_ms`` is what a dock's longest stall may be here."""
    meter = StallMeter()
    meter.allowance_ms = stall_allowance_ms(napari_first_layer_ms(make_napari_viewer, qtbot))
    yield meter
    meter.timer.stop()


def stall_summary() -> list[str]:
    """The lines that report the stalls measured in this process."""
    lines = []
    if STALLS:
        lines.append("longest event-loop stall while each dock's main job ran: " + ", ".join(
            f"{dock} {ms:.0f} ms" for dock, ms in sorted(STALLS.items())))
    if NAPARI_FIRST_LAYER:
        ref = max(NAPARI_FIRST_LAYER)
        lines.append(f"napari's own stall showing a first 32³ image: "
                     f"{', '.join(f'{ms:.0f}' for ms in NAPARI_FIRST_LAYER)} ms → each dock allowed "
                     f"{stall_allowance_ms(ref):.0f} ms")
    return lines


def pytest_sessionfinish(session):
    if hasattr(session.config, "workeroutput"):  # an xdist worker: tests/conftest.py prints them in the controller
        from tests.quiet import wait_summary

        session.config.workeroutput["summary_lines"] = stall_summary() + wait_summary()


def pytest_terminal_summary(terminalreporter):
    for line in stall_summary():  # one process (-n 0); under xdist a worker's terminal is not shown
        terminalreporter.write_line(line)

STALL_GOAL_MS = 100  # issue 29: the GUI should never stop answering longer than this while a dock's job runs
# What made the first runs stall 131–204 ms, and what each fix measured (2026-11-30, idle 2-core machine, Xvfb):
# - several result layers added in one event-loop turn (20–80 ms each, a repaint after): results are shown a layer a
#   turn (napari_cryoforge._jobs.in_turns), never from the loop napari nests inside a progress bar's update;
# - an import in the job's thread (sklearn for the hypothesis test's KDE: up to 300 ms holding the interpreter lock):
#   the dock imports it when it opens (JobDock.preload);
# - sklearn's density of 4 096 codes in one call (97 ms holding the lock): in chunks of 512;
# - the interpreter's full garbage collections, 345 ms over the ≈ 615 000 objects of a `cryoforge view` session:
#   the launcher freezes startup's objects (launch.freeze_startup_objects); the meter does the same at its start.
# - a job computing beside the GUI (both want the interpreter): the job waits at each event until it is shown.
# After, in the whole GUI suite: align 47–56 ms, hypothesis test 70–92, explorer 56–61, Multi-CryoGAN 85–96,
# simulate 59–70, QA 57–73, FSC 68–79 (four runs). Alone in a fresh process Multi-CryoGAN's first curve draws in
# 91–102 ms: a 25 ms draw plus a 70 ms collection of the objects made since startup; such a collection landing in a
# display turn gave the hypothesis test 102–125 ms in 2 of ~12 runs. The tests allow half again the goal.
# Later (a clean-clone CI run failed at 155 ms): the hypothesis test's KDE bandwidth search, scikit-learn's GridSearchCV
# (63 fits and scores of small arrays), kept the interpreter lock from the GUI thread for 80–190 ms. Each numpy call
# inside lets the lock go for microseconds and takes it back before a waiting thread wakes, so the waiter's 5 ms
# switch request never comes due (a 10 ms timer beside it: up to 169 ms late). The held-out likelihood is now one
# distance matrix in torch (cryoforge.hyptest.null.cv_log_likelihood, equal to GridSearchCV's scores to 1e-9): 5 ms.
# Hypothesis test after: 57–89 ms alone (8 runs), 72–75 ms in the whole suite.
# Later still (2026-12-01, CI and the session's machine both ~2× slower): 6 docks at 150–237 ms, every worst turn being
# napari adding a layer (dims sliders 40–60 ms, vispy node 40–60, the layer's Qt controls 60–80) or a matplotlib draw.
# napari's own add_image of a first 32³ image in a fresh viewer stalls 160–200 ms there (2D 99–139, a second 3D layer
# 83–135): no dock can show a volume faster than napari does. So the goal is the larger of 100 ms and napari's own
# first-layer stall measured in the same process (napari_first_layer_ms: the longest of 3, as they spread 156–276 ms in
# one process), and a dock is allowed half again that: a dock that shows two layers in one turn, or computes or imports
# on the GUI thread, still fails. On the faster machine of 2026-11-30 (napari's own ≤ 100 ms) that is the old 150 ms.


def stall_allowance_ms(napari_ms: float) -> float:
    """What a dock's longest stall may be where napari's own first-layer stall is ``napari_ms``."""
    return 1.5 * max(STALL_GOAL_MS, napari_ms)
