"""The Simulate dock: live preview, stale previews dropped, dataset generation, cancel, bad input; sample data."""

import numpy as np
import pytest


@pytest.fixture
def simulate(make_napari_viewer, qtbot):
    from napari_cryoforge.widgets.simulate import SimulateWidget

    viewer = make_napari_viewer()
    widget = SimulateWidget(viewer)
    viewer.window.add_dock_widget(widget)
    yield viewer, widget
    for job in (widget.job, widget.preview_job):
        if job is not None and job.running:
            job.cancel()
            qtbot.waitUntil(lambda j=job: not j.running, timeout=30000)


def _wait(qtbot, widget, attr="preview_job"):
    qtbot.waitUntil(lambda: getattr(widget, attr) is not None and not getattr(widget, attr).running, timeout=60000)


def test_preview_shows_map_subtomogram_and_wedge(simulate, qtbot, stall_meter):
    viewer, w = simulate
    stall_meter.start()
    w.update_preview()
    _wait(qtbot, w)
    qtbot.waitUntil(lambda: w.last_preview is not None, timeout=10000)
    assert stall_meter.stop("Simulate (preview)") <= stall_meter.allowance_ms
    assert {"sim: clean map", "sim: subtomogram", "sim: tilt 0°"} <= {ly.name for ly in viewer.layers}
    sub = viewer.layers["sim: subtomogram"]
    assert sub.data.shape == (32, 32, 32) and tuple(sub.scale) == (12.0, 12.0, 12.0)
    wedge = w.last_preview.wedge
    assert wedge.mean() == pytest.approx(2 / 3, abs=0.05)  # ±60° samples 120° of 180°
    assert "tilts -60…60°" in w.preview_label.text()


def test_parameter_change_replaces_stale_preview(simulate, qtbot):
    _, w = simulate
    w.update_preview()
    w.physics.wedge.setValue(60.0)  # while the first preview runs
    w.update_preview()
    assert w._preview_pending
    qtbot.waitUntil(lambda: not w._preview_pending and not w.preview_job.running, timeout=60000)
    qtbot.waitUntil(lambda: "tilts -30…30°" in w.preview_label.text(), timeout=10000)
    assert w.last_preview.tilt_range == (-30.0, 30.0)


def test_generate_pairs_lands_layers_and_files(simulate, qtbot, tmp_path):
    viewer, w = simulate
    w.generation.count.setValue(6)
    w.generation.out_dir.setText(str(tmp_path / "pairs"))
    w.generate()
    _wait(qtbot, w, "job")
    assert viewer.layers["sim: s_a"].data.shape == (6, 32, 32, 32)
    assert tuple(viewer.layers["sim: s_b"].scale) == (1.0, 12.0, 12.0, 12.0)
    assert (tmp_path / "pairs" / "truth.star").is_file() and (tmp_path / "pairs" / "subtomos_b.mrc").is_file()


def test_particles_mode_and_cancel_leaves_no_files(simulate, qtbot, tmp_path):
    viewer, w = simulate
    w.physics.mode.setCurrentIndex(1)
    assert w.physics.defocus_min.value() == 1.0 and w.physics.defocus_max.value() == 2.0
    w.sources.voxel.setValue(8.0)
    w.generation.count.setValue(30_000)
    w.generation.out_dir.setText(str(tmp_path / "big"))
    w.generate()
    qtbot.wait(300)
    assert w.job.running, w.job.error
    w.cancel()
    _wait(qtbot, w, "job")
    assert w.job.cancelled and not (tmp_path / "big" / "particles.mrcs").exists()
    assert w.generation.button.isEnabled()


def test_missing_model_file_is_a_clear_error(simulate, notifications):
    _, w = simulate
    w.sources.source.setCurrentText("PDB / mmCIF file…")
    w.sources.path.setText("/nonexistent/model.pdb")
    w.generate()
    assert w.job is None
    assert any(s == "error" and "no such file" in m for s, m in notifications)
    w.update_preview()
    assert "no such file" in w.preview_label.text()


def test_map_layer_can_be_the_source(simulate, qtbot):
    viewer, w = simulate
    vol = np.zeros((40, 40, 40), np.float32)
    vol[15:25, 18:22, 10:30] = 1
    viewer.add_image(vol, name="my map", scale=(6.0, 6.0, 6.0))
    w.sources.source.setCurrentText("Layer: my map")
    source, voxel = w.source_spec()
    assert voxel == 6.0 and source.shape == (40, 40, 40)
    w.update_preview()
    _wait(qtbot, w)
    qtbot.waitUntil(lambda: w.last_preview is not None, timeout=10000)
    clean = w.last_preview.map
    assert clean.shape == (32, 32, 32) and clean.sum() == pytest.approx(vol.sum() * (6 / 12) ** 3, rel=0.1)


def test_sample_datasets_load(make_napari_viewer):
    viewer = make_napari_viewer()
    viewer.open_sample("napari-cryoforge", "subtomograms")
    viewer.open_sample("napari-cryoforge", "adk_particles")
    names = [ly.name for ly in viewer.layers]
    s_b = viewer.layers["s_b (30° wedge)"]
    assert s_b.data.shape == (200, 32, 32, 32) and tuple(s_b.scale) == (1.0, 12.0, 12.0, 12.0)
    parts = viewer.layers["AdK particles"]
    assert parts.data.shape == (2000, 64, 64) and tuple(parts.scale)[1:] == (1.5, 1.5)
    assert any(n.startswith("structures (") for n in names)
