"""Tests of :mod:`napari_cryoforge._reader`."""

import mrcfile
import numpy as np
import pytest

from cryoforge.io import write_mrc
from cryoforge.io.mrc import MrcWarning
from tests.helpers import error_messages


def test_reader_round_trip_voxel_size_to_scale(make_napari_viewer, tmp_path):
    data = np.random.default_rng(0).normal(size=(12, 16, 20)).astype(np.float32)
    write_mrc(tmp_path / "map.mrc", data, voxel_size=1.7)
    viewer = make_napari_viewer()
    (layer,) = viewer.open(str(tmp_path / "map.mrc"), plugin="napari-cryoforge")
    np.testing.assert_array_equal(np.asarray(layer.data), data)
    assert tuple(layer.scale) == pytest.approx((1.7, 1.7, 1.7))
    assert layer.name == "map"
    assert [str(u) for u in layer.units] == ["angstrom"] * 3


def test_reader_stack_has_particle_axis_scale_one(make_napari_viewer, tmp_path):
    stack = np.random.default_rng(1).normal(size=(6, 16, 16)).astype(np.float32)
    write_mrc(tmp_path / "parts.mrcs", stack, voxel_size=2.5)
    viewer = make_napari_viewer()
    (layer,) = viewer.open(str(tmp_path / "parts.mrcs"), plugin="napari-cryoforge")
    assert tuple(layer.scale) == pytest.approx((1.0, 2.5, 2.5))
    assert tuple(layer.axis_labels) == ("particle", "y", "x")
    np.testing.assert_array_equal(np.asarray(layer.data[4]), stack[4])


def test_reader_memory_maps_large_maps(tmp_path, monkeypatch):
    import napari_cryoforge._reader as reader

    write_mrc(tmp_path / "big.mrc", np.ones((8, 8, 8)), voxel_size=2.0)
    assert not isinstance(reader.read_mrc_layers(str(tmp_path / "big.mrc"))[0][0], np.memmap)
    monkeypatch.setattr(reader, "MMAP_BYTES", 1024)  # as if the map were larger than the threshold
    data = reader.read_mrc_layers(str(tmp_path / "big.mrc"))[0][0]
    assert isinstance(data, np.memmap) and data.shape == (8, 8, 8)


def test_truncated_mrc(make_napari_viewer, tmp_path, notifications):
    write_mrc(tmp_path / "ok.mrc", np.ones((16, 16, 16)), 1.0)
    raw = (tmp_path / "ok.mrc").read_bytes()
    (tmp_path / "cut.mrc").write_bytes(raw[:3000])
    viewer = make_napari_viewer()
    assert viewer.open(str(tmp_path / "cut.mrc"), plugin="napari-cryoforge") == []
    assert len(viewer.layers) == 0
    (msg,) = error_messages(notifications)
    assert msg.startswith("Cannot open cut.mrc:") and "truncated" in msg and "Traceback" not in msg


def test_non_mrc_file_with_mrc_extension(make_napari_viewer, tmp_path, notifications):
    (tmp_path / "notes.mrc").write_text("these are my notes\n" * 40)
    viewer = make_napari_viewer()
    assert viewer.open(str(tmp_path / "notes.mrc"), plugin="napari-cryoforge") == []
    (msg,) = error_messages(notifications)
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
    assert "5-D" in error_messages(notifications)[-1]
    assert not (tmp_path / "movie.mrc").exists()
