"""Tests of :mod:`cryoforge.sim.density`."""

import numpy as np
import pytest
import torch

from cryoforge.conventions import rotation_angle_deg
from cryoforge.geometry import rotate_volume
from cryoforge.sim.atoms import ModelError, read_model, superpose
from cryoforge.sim.density import model_to_density, models_to_density
from cryoforge.sim.phantoms import phantom_model


def test_density_matches_peng_form_factors_in_real_space():
    """30 carbons at random positions, B = 100 Å²: the map equals the analytic sum of the atoms'
    five-Gaussian potentials sampled at the voxel centres (the band limit then cuts < 0.2 %)."""
    import gemmi

    coef = gemmi.Element("C").c4322
    b_global = 100.0
    xyz = np.random.default_rng(0).uniform(-7, 7, (30, 3)).astype(np.float32)
    vol = models_to_density(xyz, ["C"] * 30, 32, 1.0, bfactor=b_global, centre=(0, 0, 0)).numpy()
    a, b = np.array(coef.a), np.array(coef.b) + b_global
    g = np.arange(32) - 16
    z, y, x = np.meshgrid(g, g, g, indexing="ij")
    p = np.stack([x, y, z], -1).reshape(-1, 1, 3)
    r2 = ((p - xyz[None]) ** 2).sum(-1)[..., None]  # (voxels, atoms, 1)
    analytic = (a * (4 * np.pi / b) ** 1.5 * np.exp(-4 * np.pi**2 * r2 / b)).sum((1, 2)).reshape(vol.shape)
    assert vol.sum() == pytest.approx(30 * sum(coef.a), rel=1e-3)  # integral = N f(0)
    assert np.abs(vol - analytic).max() < 0.03 * analytic.max()
    assert np.corrcoef(vol.ravel(), analytic.ravel())[0, 1] > 0.9999


def test_gaussian_method_width_follows_resolution():
    vol = models_to_density(np.zeros((1, 3)), ["C"], 32, 1.0, method="gaussian", resolution=8.0).numpy()
    sigma = 8.0 / (np.pi * np.sqrt(2))
    prof = vol[16, 16, 16:24] / vol[16, 16, 16]
    np.testing.assert_allclose(prof, np.exp(-np.arange(8) ** 2 / (2 * sigma**2)), atol=0.01)
    assert vol.sum() == pytest.approx(6.0, rel=1e-3)  # weighted by atomic number
    with pytest.raises(ValueError, match="resolution"):
        models_to_density(np.zeros((1, 3)), ["C"], 32, 1.0, method="gaussian")


def test_centre_of_mass_goes_to_box_centre():
    m = phantom_model("multiblob", 3)
    m.coords += np.array([40.0, -25.0, 10.0], np.float32)
    vol = model_to_density(m, 64, 4.0, resolution=8.0).numpy()
    idx = np.indices(vol.shape).reshape(3, -1)
    com = (idx * vol.reshape(-1)).sum(1) / vol.sum()
    np.testing.assert_allclose(com, [32, 32, 32], atol=0.3)


def test_bad_parameters_name_themselves(tmp_path):
    m = phantom_model("ribosome", 0)
    with pytest.raises(ValueError, match="box 32 is too small"):
        model_to_density(m, 32, 4.0)
    with pytest.raises(ValueError, match="voxel_size"):
        model_to_density(m, 32, -1.0)
    with pytest.raises(ValueError, match="box must be an integer"):
        model_to_density(m, 4, 10.0)
    empty = tmp_path / "empty.pdb"
    empty.write_text("REMARK nothing here\nEND\n")
    with pytest.raises(ModelError, match="no atoms"):
        read_model(empty)
    with pytest.raises(ModelError, match="no such file"):
        read_model(tmp_path / "missing.pdb")


@pytest.mark.parametrize("name,voxel,box", [
    ("adk_closed.pdb.gz", 12.0, 32), ("adk_open.pdb.gz", 6.0, 64), ("4v1w.cif.gz", 12.0, 32),
    ("4v1w.cif.gz", 6.0, 64), ("4v5d.cif.gz", 12.0, 32), ("4v5d.cif.gz", 6.0, 64),
])
def test_real_models_make_centred_maps(shared_dir, name, voxel, box):
    m = read_model(shared_dir / "structures" / name)
    vol = model_to_density(m, box, voxel).numpy()
    assert vol.shape == (box,) * 3 and np.isfinite(vol).all()
    smooth = np.clip(vol, 0, None)
    idx = np.indices(vol.shape).reshape(3, -1)
    com = (idx * smooth.reshape(-1)).sum(1) / smooth.sum()
    np.testing.assert_allclose(com, [box // 2] * 3, atol=0.6)


def test_apoferritin_octahedral_symmetry_is_visible(shared_dir):
    """Symmetry operators from chain superposition (Kabsch) map the 4V1W density onto itself."""
    m = read_model(shared_dir / "structures" / "4v1w.cif.gz")
    n_chain = len(m) // 24
    chains = m.coords.reshape(24, n_chain, 3)
    vol = torch.as_tensor(model_to_density(m, 32, 6.0))
    angles, corrs = [], []
    for j in range(1, 24):
        moved = superpose(chains[0], chains[j])  # chain 0 placed onto chain j
        u, _, vt = np.linalg.svd((chains[0] - chains[0].mean(0)).T @ (moved - moved.mean(0)))
        r = (u @ vt).T
        angles.append(float(rotation_angle_deg(torch.eye(3, dtype=torch.float64), torch.as_tensor(r, dtype=torch.float64))))
        rot = rotate_volume(vol, torch.as_tensor(r, dtype=torch.float32))
        corrs.append(np.corrcoef(rot.ravel(), vol.ravel())[0, 1])
    assert sum(abs(a - 90) < 3 for a in angles) == 6  # the six ±90° turns about the three 4-fold axes
    assert sum(abs(a - 120) < 3 for a in angles) == 8 and min(corrs) > 0.9
