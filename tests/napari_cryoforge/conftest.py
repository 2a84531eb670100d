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
