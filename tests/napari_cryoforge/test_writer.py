"""Tests of :mod:`napari_cryoforge._writer`."""

import mrcfile
import numpy as np
import pytest

from cryoforge.io import read_mrc, write_mrc


def test_writer_keeps_voxel_size(make_napari_viewer, tmp_path):
    viewer = make_napari_viewer()
    data = np.random.default_rng(2).normal(size=(8, 8, 8)).astype(np.float32)
    viewer.add_image(data, name="v", scale=(1.3, 1.3, 1.3))
    out = tmp_path / "saved.mrc"
    written = viewer.layers.save(str(out), plugin="napari-cryoforge")
    assert written == [str(out)]
    back, info = read_mrc(out)
    np.testing.assert_array_equal(back, data)
    assert info.voxel_size == pytest.approx((1.3, 1.3, 1.3))


def test_writer_takes_the_edited_scale(make_napari_viewer, tmp_path):
    write_mrc(tmp_path / "m.mrc", np.ones((6, 8, 8)), voxel_size=1.0)
    write_mrc(tmp_path / "s.mrcs", np.ones((3, 8, 8)), voxel_size=1.0)
    viewer = make_napari_viewer()
    vol = viewer.open(str(tmp_path / "m.mrc"), plugin="napari-cryoforge")[0]
    vol.scale = (1.31, 1.31, 1.31)  # the user corrects the voxel size
    vol.save(str(tmp_path / "m2.mrc"), plugin="napari-cryoforge")
    assert read_mrc(tmp_path / "m2.mrc")[1].voxel_size == pytest.approx((1.31, 1.31, 1.31))
    stack = viewer.open(str(tmp_path / "s.mrcs"), plugin="napari-cryoforge")[0]
    stack.scale = (1.0, 1.31, 1.31)
    stack.save(str(tmp_path / "s2.mrcs"), plugin="napari-cryoforge")
    assert read_mrc(tmp_path / "s2.mrcs")[1].voxel_size[:2] == pytest.approx((1.31, 1.31))


def test_read_then_write_a_stack_stays_a_stack(make_napari_viewer, tmp_path):
    write_mrc(tmp_path / "s.mrcs", np.ones((3, 8, 8)), voxel_size=3.0)
    viewer = make_napari_viewer()
    viewer.open(str(tmp_path / "s.mrcs"), plugin="napari-cryoforge")
    viewer.layers.save(str(tmp_path / "copy.mrcs"), plugin="napari-cryoforge")
    with mrcfile.open(tmp_path / "copy.mrcs") as m:
        assert m.is_image_stack() and float(m.voxel_size.x) == pytest.approx(3.0)
