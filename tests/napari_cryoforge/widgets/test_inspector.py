"""Volume inspector dock: histogram, slices, FSC curve, jobs with progress and cancel."""

import time

import numpy as np
from qtpy.QtCore import QTimer

from tests.helpers import error_messages


def test_histogram_and_slices_of_active_layer(inspector):
    viewer, w = inspector
    viewer.layers.selection.active = viewer.layers["phantom"]
    assert "phantom" in w.info.text() and "voxel 2 Å" in w.info.text()
    bars = w.hist_ax.patches
    assert len(bars) == 128 and sum(b.get_height() for b in bars) == 64**3
    assert len(w.hist_ax.lines) == 2  # the two contrast limits
    assert all(ax.images for ax in w.slice_axes)
    # slices follow the viewer's dims
    viewer.dims.set_current_step(0, 5)
    assert "z=5" in w.slice_axes[0].get_title()


def test_fsc_panel_draws_curve_with_resolution(inspector, qtbot, stall_meter):
    viewer, w = inspector
    w.fsc.map_a.setCurrentText("phantom half 1")
    w.fsc.map_b.setCurrentText("phantom half 2")
    w.fsc.repeats.setValue(2)
    stall_meter.start()
    w.fsc.compute_btn.click()
    qtbot.waitUntil(lambda: w.last_result is not None, timeout=60000)
    qtbot.waitUntil(lambda: not w.job.running, timeout=10000)
    assert stall_meter.stop("Volume inspector (FSC)") <= stall_meter.allowance_ms
    labels = [ln.get_label() for ln in w.fsc.fsc_ax.lines]
    assert any(lab.startswith("unmasked") for lab in labels)
    assert any(lab.startswith("mask-corrected") for lab in labels)
    ys = {round(ln.get_ydata()[0], 3) for ln in w.fsc.fsc_ax.lines if len(set(ln.get_ydata())) == 1}
    assert {0.143, 0.5} <= ys  # threshold lines drawn
    res = w.last_result.corrected.resolution(0.143)
    assert 4.0 <= res <= 30.0
    assert f"{res:.2f} Å" in w.fsc.fsc_label.text()
    assert w.job.pbar.n == w.job.pbar.total  # progress bar ran to the end


def test_job_from_dock_shows_progress_and_cancels_while_gui_responds(inspector, qtbot):
    viewer, w = inspector
    w.fsc.repeats.setValue(100000)  # far too long to finish during the test
    w.fsc.compute_btn.click()
    assert w.cancel_btn.isEnabled() and not w.fsc.compute_btn.isEnabled()
    qtbot.waitUntil(lambda: w.job.pbar.n >= 3, timeout=60000)
    assert w.job.pbar.total == 100002

    # the GUI thread keeps serving events while the job runs
    fired = []
    t0 = time.monotonic()
    QTimer.singleShot(50, lambda: fired.append(time.monotonic() - t0))
    qtbot.waitUntil(lambda: bool(fired), timeout=2000)
    assert fired[0] < 1.0 and w.job.running
    viewer.dims.set_current_step(0, 10)  # the inspector redraws meanwhile
    assert "z=10" in w.slice_axes[0].get_title()

    w.cancel_btn.click()
    qtbot.waitUntil(lambda: not w.job.running, timeout=30000)
    assert w.job.cancelled and w.last_result is None
    assert w.job.pbar.n < 100002
    assert w.fsc.fsc_label.text() == "cancelled" and w.fsc.compute_btn.isEnabled()


def test_canvas_screenshot_is_not_blank(make_napari_viewer):
    viewer = make_napari_viewer(show=True)
    viewer.open_sample("napari-cryoforge", "phantom")
    viewer.dims.ndisplay = 3
    viewer.reset_view()
    shot = viewer.screenshot(canvas_only=True, flash=False)
    assert shot.ndim == 3 and shot.shape[2] == 4
    gray = shot[..., :3].astype(float).mean(-1)
    assert gray.std() > 5  # not a uniform image
    assert (gray > gray.min() + 40).mean() > 0.005  # the density is visible
    assert np.isfinite(gray).all()


def test_non_cubic_map_in_fsc_panel(inspector, notifications):
    viewer, w = inspector
    viewer.add_image(np.ones((16, 16, 20), np.float32), name="box a")
    viewer.add_image(np.ones((16, 16, 20), np.float32), name="box b")
    w.fsc.map_a.setCurrentText("box a")
    w.fsc.map_b.setCurrentText("box b")
    w.fsc.compute_btn.click()
    assert w.job is None
    assert "cubic" in w.fsc.fsc_label.text() and "cubic" in error_messages(notifications)[-1]
