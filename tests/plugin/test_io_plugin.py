"""Reader, writer, sample data and manifest of the napari plugin."""

from pathlib import Path

import mrcfile
import numpy as np
import pytest

from cryoforge.io import read_mrc, write_mrc

ROOT = Path(__file__).resolve().parents[2]


def test_manifest_inside_package_is_the_root_manifest():
    import napari_cryoforge

    inside = Path(napari_cryoforge.__file__).parent / "napari.yaml"
    assert inside.read_text() == (ROOT / "napari.yaml").read_text()


def test_npe2_validates_manifest():
    from npe2 import PluginManifest

    pm = PluginManifest.from_distribution("napari-cryoforge")
    assert pm.name == "napari-cryoforge"
    assert {c.id.split(".")[-1] for c in pm.contributions.commands} >= {"get_reader", "write_mrc", "volume_inspector"}


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


def test_sample_data_loads(make_napari_viewer):
    viewer = make_napari_viewer()
    viewer.open_sample("napari-cryoforge", "phantom")
    assert [ly.name for ly in viewer.layers] == ["phantom half 1", "phantom half 2", "phantom"]
    for ly in viewer.layers:
        assert ly.data.shape == (64, 64, 64) and tuple(ly.scale) == (2.0, 2.0, 2.0)
    assert viewer.layers["phantom"].data.max() > 0.5


def test_open_viewer_docks_inspector(qtbot):
    from napari_cryoforge.launch import open_viewer
    from napari_cryoforge.widgets.explorer import LatentExplorer
    from napari_cryoforge.widgets.inspector import VolumeInspector
    from napari_cryoforge.widgets.simulate import SimulateWidget

    viewer, dock, simulate, align, hyptest, explorer = open_viewer(sample=True, show=False)
    try:
        assert isinstance(dock, VolumeInspector) and isinstance(simulate, SimulateWidget)
        assert isinstance(explorer, LatentExplorer) and explorer.manifold is None
        assert {"s_a (no wedge)", "AdK particles", "phantom", "s_b known complexes, SNR 0.03"} <= {
            ly.name for ly in viewer.layers}
        assert hyptest.layer.currentText().startswith("s_b")
        assert dock.map_a.count() == 3 and dock.map_a.currentText() != dock.map_b.currentText()
    finally:
        viewer.close()


def test_reader_memory_maps_large_maps(tmp_path, monkeypatch):
    import napari_cryoforge._reader as reader

    write_mrc(tmp_path / "big.mrc", np.ones((8, 8, 8)), voxel_size=2.0)
    assert not isinstance(reader.read_mrc_layers(str(tmp_path / "big.mrc"))[0][0], np.memmap)
    monkeypatch.setattr(reader, "MMAP_BYTES", 1024)  # as if the map were larger than the threshold
    data = reader.read_mrc_layers(str(tmp_path / "big.mrc"))[0][0]
    assert isinstance(data, np.memmap) and data.shape == (8, 8, 8)


@pytest.mark.canvas
def test_each_view_flag_brings_its_dock_to_the_front(qtbot):
    from argparse import Namespace

    from qtpy.QtWidgets import QApplication

    from napari_cryoforge.launch import FLAG_DOCKS, front_dock, open_viewer

    viewer, *docks = open_viewer(sample=True, show=True)
    try:
        def on_top():
            qtbot.wait(20)  # the event loop runs: what the samples' layers do to the docks happens here
            QApplication.processEvents()
            return [d for d in docks if not d.parentWidget().visibleRegion().isEmpty()]

        # as `cryoforge view --sample --fsc` does it: raised before the loop has run once
        assert front_dock(Namespace(fsc=True), docks) is docks[0] and on_top() == [docks[0]]
        assert front_dock(Namespace(), docks) is docks[0] and on_top() == [docks[0]]  # no flag: the inspector
        for flag, dock in zip(FLAG_DOCKS, docks, strict=True):
            assert front_dock(Namespace(**{flag: True}), docks) is dock
            assert on_top() == [dock], flag
    finally:
        viewer.close()


def test_dock_outputs_default_beside_the_work_not_in_home(tmp_path, monkeypatch):
    from pathlib import Path

    from napari_cryoforge.widgets.controls import default_output

    monkeypatch.chdir(tmp_path)
    assert Path(default_output("gumnet.pt")) == tmp_path / "cryoforge_output" / "gumnet.pt"
