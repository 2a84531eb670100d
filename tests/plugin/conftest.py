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
def inspector(make_napari_viewer, qtbot):
    """A viewer holding the sample data with the Volume inspector docked; waits for jobs at teardown."""
    from napari_cryoforge.widgets.inspector import VolumeInspector

    viewer = make_napari_viewer()
    viewer.open_sample("napari-cryoforge", "phantom")
    widget = VolumeInspector(viewer)
    viewer.window.add_dock_widget(widget)
    yield viewer, widget
    if widget.job is not None and widget.job.running:
        widget.cancel()
        qtbot.waitUntil(lambda: not widget.job.running, timeout=30000)
