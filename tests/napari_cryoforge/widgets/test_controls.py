"""Tests of :mod:`napari_cryoforge.widgets.controls`."""

from pathlib import Path


def test_dock_outputs_default_beside_the_work_not_in_home(tmp_path, monkeypatch):

    from napari_cryoforge.widgets.controls import default_output

    monkeypatch.chdir(tmp_path)
    assert Path(default_output("gumnet.pt")) == tmp_path / "cryoforge_output" / "gumnet.pt"
