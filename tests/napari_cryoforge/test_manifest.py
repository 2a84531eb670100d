"""The plugin's npe2 manifest (napari.yaml)."""

from pathlib import Path

from tests.helpers import REPO

ROOT = REPO


def test_manifest_inside_package_is_the_root_manifest():
    import napari_cryoforge

    inside = Path(napari_cryoforge.__file__).parent / "napari.yaml"
    assert inside.read_text() == (ROOT / "napari.yaml").read_text()


def test_npe2_validates_manifest():
    from npe2 import PluginManifest

    pm = PluginManifest.from_distribution("napari-cryoforge")
    assert pm.name == "napari-cryoforge"
    assert {c.id.split(".")[-1] for c in pm.contributions.commands} >= {"get_reader", "write_mrc", "volume_inspector"}
