"""Bad inputs reach the user as one clear notification, never as an exception or a traceback.

pytest-qt fails a test if an exception escapes into a Qt slot, so these tests also prove none does.
"""

import numpy as np
import pytest
import torch

from cryoforge.io import load_checkpoint, save_checkpoint, write_mrc
from cryoforge.io.mrc import MrcWarning
from cryoforge.jobs import Progress, Result
from napari_cryoforge._jobs import start_job


def _errors(notes):
    return [m for s, m in notes if s == "error"]


def test_truncated_mrc(make_napari_viewer, tmp_path, notifications):
    write_mrc(tmp_path / "ok.mrc", np.ones((16, 16, 16)), 1.0)
    raw = (tmp_path / "ok.mrc").read_bytes()
    (tmp_path / "cut.mrc").write_bytes(raw[:3000])
    viewer = make_napari_viewer()
    assert viewer.open(str(tmp_path / "cut.mrc"), plugin="napari-cryoforge") == []
    assert len(viewer.layers) == 0
    (msg,) = _errors(notifications)
    assert msg.startswith("Cannot open cut.mrc:") and "truncated" in msg and "Traceback" not in msg


def test_non_mrc_file_with_mrc_extension(make_napari_viewer, tmp_path, notifications):
    (tmp_path / "notes.mrc").write_text("these are my notes\n" * 40)
    viewer = make_napari_viewer()
    assert viewer.open(str(tmp_path / "notes.mrc"), plugin="napari-cryoforge") == []
    (msg,) = _errors(notifications)
    assert "not a readable MRC file" in msg


def test_nan_map_opens_with_warning(make_napari_viewer, tmp_path, notifications):
    d = np.ones((8, 8, 8), np.float32)
    d[2, 2, 2] = np.nan
    with pytest.warns(MrcWarning):
        write_mrc(tmp_path / "nan.mrc", d, 1.0)
    viewer = make_napari_viewer()
    (layer,) = viewer.open(str(tmp_path / "nan.mrc"), plugin="napari-cryoforge")
    assert np.isnan(layer.data).sum() == 1
    assert any(s == "warning" and "NaN" in m for s, m in notifications)


def test_volume_stack_file_and_five_d_layer(make_napari_viewer, tmp_path, notifications):
    import mrcfile

    with mrcfile.new(tmp_path / "4d.mrc") as m:
        m.set_data(np.ones((2, 4, 4, 4), np.float32))
        m.voxel_size = 3.0
    viewer = make_napari_viewer()
    (layer,) = viewer.open(str(tmp_path / "4d.mrc"), plugin="napari-cryoforge")
    assert layer.data.shape == (2, 4, 4, 4) and tuple(layer.scale) == (1.0, 3.0, 3.0, 3.0)
    assert tuple(layer.axis_labels) == ("subtomogram", "z", "y", "x")
    viewer.add_image(np.ones((2, 2, 4, 4, 4), np.float32), name="movie")
    from napari_cryoforge._writer import write_mrc as plugin_write

    assert plugin_write(str(tmp_path / "movie.mrc"), viewer.layers["movie"].data, {"name": "movie"}) == []
    assert "5-D" in _errors(notifications)[-1]
    assert not (tmp_path / "movie.mrc").exists()


def test_non_cubic_map_in_fsc_panel(inspector, notifications):
    viewer, w = inspector
    viewer.add_image(np.ones((16, 16, 20), np.float32), name="box a")
    viewer.add_image(np.ones((16, 16, 20), np.float32), name="box b")
    w.map_a.setCurrentText("box a")
    w.map_b.setCurrentText("box b")
    w.compute_btn.click()
    assert w.job is None
    assert "cubic" in w.fsc_label.text() and "cubic" in _errors(notifications)[-1]


def _load_model_job(path, kind):
    yield Progress(0, 1, "loading checkpoint")
    ck = load_checkpoint(path, kind=kind)
    yield Result(ck["kind"])


def test_wrong_checkpoint_kind_in_a_gui_job(make_napari_viewer, qtbot, tmp_path, notifications):
    make_napari_viewer()
    save_checkpoint(tmp_path / "gumnet.pt", "gumnet", {}, {"net": {"w": torch.zeros(2)}})
    handle = start_job(_load_model_job(tmp_path / "gumnet.pt", "wgan3d"), "Load WGAN")
    qtbot.waitUntil(lambda: not handle.running, timeout=10000)
    assert handle.result is None and handle.error is not None
    (msg,) = _errors(notifications)
    assert msg == ("Load WGAN failed: gumnet.pt: is a 'gumnet' checkpoint, but a 'wgan3d' checkpoint is "
                   "needed here")
