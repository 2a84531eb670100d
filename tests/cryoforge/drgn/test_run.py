"""Tests of :mod:`cryoforge.drgn.run`."""

import json
import pickle

import numpy as np
import pytest

from cryoforge.drgn import (
    DrgnManifold,
)
from cryoforge.manifold import ManifoldError
from tests.helpers import CRYODRGN, TESTS, needs_het_weights, random_drgn_run

GOLDEN = TESTS / "data" / "cryodrgn_eval_vol_het.json"


@needs_het_weights
def test_real_cryodrgn_model_matches_cryodrgn_eval_vol():
    """Voxels of cryoDRGN 4.3.1's own eval_vol output (tests/data, command inside) for three z: same values,
    hence the same orientation and handedness."""
    gold = json.loads(GOLDEN.read_text())
    m = DrgnManifold(CRYODRGN / "het_weights.pkl")
    assert m.latent_dim == 8 and m.box == 64 and m.files["config"].endswith("het_config.yaml")
    vols = m.decode(np.array(gold["z"], np.float32)).numpy()
    assert vols.shape == (3, 64, 64, 64)
    idx = tuple(np.array(gold["voxels_zyx"]).T)
    for v, values, total in zip(vols, gold["values"], gold["sum"], strict=True):
        np.testing.assert_allclose(v[idx], values, atol=2e-5 * np.abs(values).max())
        assert v.sum() == pytest.approx(total, rel=1e-4, abs=1e-2)
    mirrored = vols[0][::-1][idx]
    assert np.abs(mirrored - gold["values"][0]).max() > 0.1  # the other hand does not match


def test_run_folder_with_z_gives_data_latents(tmp_path):
    random_drgn_run(tmp_path)
    z = np.random.default_rng(0).normal(size=(40, 2)).astype(np.float32)
    with open(tmp_path / "z.3.pkl", "wb") as fh:
        pickle.dump(z, fh)
        pickle.dump(z * 0, fh)
    m = DrgnManifold(tmp_path)
    assert m.epoch == 3 and m.data_latents.shape == (40, 2) and m.data_labels[5] == "image 5"


def test_bad_runs(tmp_path):
    import yaml

    random_drgn_run(tmp_path)
    cfg = yaml.safe_load((tmp_path / "config.yaml").read_text())
    cfg["model_args"]["pdim"] = 32
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(cfg))
    with pytest.raises(ManifoldError, match="weights do not match the config"):
        DrgnManifold(tmp_path)
    random_drgn_run(tmp_path)
    with pytest.raises(ManifoldError, match="2 coordinates"):
        DrgnManifold(tmp_path).decode(np.zeros(5))
    with open(tmp_path / "z.3.pkl", "wb") as fh:
        pickle.dump(np.zeros((4, 3), np.float32), fh)
    with pytest.raises(ManifoldError, match="zdim is 2"):
        DrgnManifold(tmp_path)
