"""Tests of :mod:`napari_cryoforge.launch` (``cryoforge view``)."""

import gc

import pytest


@pytest.fixture(autouse=True)
def _unfreeze():
    """``open_viewer`` freezes the objects of startup for good (a session's choice); the test process thaws them."""
    yield
    gc.unfreeze()


def test_open_viewer_docks_inspector(qtbot):
    from napari_cryoforge.launch import open_viewer
    from napari_cryoforge.widgets.explorer import LatentExplorer
    from napari_cryoforge.widgets.inspector import VolumeInspector
    from napari_cryoforge.widgets.simulate import SimulateWidget

    viewer, dock, simulate, align, hyptest, explorer, mcgan, qa, match = open_viewer(sample=True, show=False)
    try:
        from napari_cryoforge.widgets.match import MatchWidget
        from napari_cryoforge.widgets.mcgan import McganWidget
        from napari_cryoforge.widgets.qa import QaWidget

        assert isinstance(dock, VolumeInspector) and isinstance(simulate, SimulateWidget)
        assert isinstance(mcgan, McganWidget) and isinstance(qa, QaWidget) and isinstance(match, MatchWidget)
        assert isinstance(explorer, LatentExplorer) and explorer.manifold is None
        assert {"s_a (no wedge)", "AdK closed, open (true states)", "phantom", "s_b known complexes, SNR 0.03"} <= {
            ly.name for ly in viewer.layers}
        # no axis is both a stack's index and a length in Å (the 2-D AdK particle stack is left out)
        for axis in range(viewer.dims.ndim):
            units = {str(ly.units[axis - viewer.dims.ndim + ly.ndim]) for ly in viewer.layers
                     if axis - viewer.dims.ndim + ly.ndim >= 0}
            assert len(units) == 1, (axis, units)
        assert [ly.name for ly in viewer.layers if ly.visible] == ["phantom"]
        assert hyptest.inputs.layer.currentText().startswith("s_b")
        assert dock.fsc.map_a.count() == 3 and dock.fsc.map_a.currentText() != dock.fsc.map_b.currentText()
        assert gc.get_freeze_count() > 100_000  # startup's objects are out of the full collections
    finally:
        viewer.close()


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


def test_view_match_needs_a_tomogram_and_a_template(tmp_path, capsys):
    from cryoforge.cli import main

    assert main(["view", str(tmp_path / "tomo.mrc"), "--match"]) == 2
    assert "--match needs a tomogram and a template" in capsys.readouterr().err
