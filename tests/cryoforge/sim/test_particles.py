"""Tests of :mod:`cryoforge.sim.particles`."""

import numpy as np
import pytest
import torch

from cryoforge.geometry import rotate_volume
from cryoforge.io.mrc import read_mrc
from cryoforge.io.star import read_particles_star
from cryoforge.jobs import drive
from cryoforge.sim.density import model_to_density
from cryoforge.sim.params import ParticleParams
from cryoforge.sim.particles import Ensemble, simulate_particles_job, snr_from_db
from cryoforge.sim.phantoms import phantom_model


@pytest.fixture(scope="module")
def blob():
    return model_to_density(phantom_model("multiblob", 1), 32, 4.0, resolution=8.0).numpy()


def test_pose_and_shift_follow_relion(blob, tmp_path):
    """Noise-free, no CTF: image = projection along z of the map rotated by R, moved by d; the STAR file
    stores R's ZYZ angles and origin −d · pixel size (Å)."""
    params = ParticleParams(pixel_size=4.0, snr=None, apply_ctf=False, max_shift=3.0)
    sim = drive(simulate_particles_job(Ensemble(blob, None), 8, params, seed=5, out_dir=tmp_path))
    images, meta, truth = sim.images, sim.metadata, sim.truth
    assert sim.folder == str(tmp_path) and (sim.noise_sigma is None) == (params.snr is None)
    star = read_particles_star(tmp_path / "particles.star")
    np.testing.assert_allclose(star.rotations, meta.rotations, atol=1e-4)
    d = truth[["shift_x_px", "shift_y_px"]].to_numpy()
    np.testing.assert_allclose(star.shifts, -d * 4.0, atol=1e-3)
    for i in range(8):
        proj = rotate_volume(torch.from_numpy(blob), torch.from_numpy(star.rotations[i])).sum(0).numpy()
        shifted = np.roll(proj, (int(round(d[i, 1])), int(round(d[i, 0]))), axis=(0, 1))
        unshifted_err = np.corrcoef(images[i].ravel(), proj.ravel())[0, 1]
        assert np.corrcoef(images[i].ravel(), shifted.ravel())[0, 1] > 0.95
        if np.abs(d[i]).max() > 1.5:
            assert unshifted_err < np.corrcoef(images[i].ravel(), shifted.ravel())[0, 1]
    stack, info = read_mrc(tmp_path / "particles.mrcs")
    assert info.is_stack and stack.shape == (8, 32, 32) and star.image_names[0] == "000001@particles.mrcs"


def test_particle_snr_is_the_target(blob):
    params = ParticleParams(pixel_size=4.0, snr=snr_from_db(-10))
    clean = drive(simulate_particles_job(Ensemble(blob, None), 300, ParticleParams(pixel_size=4.0, snr=None),
                                         seed=2)).images
    noisy = drive(simulate_particles_job(Ensemble(blob, None), 300, params, seed=2)).images
    measured = clean.var(axis=(1, 2)).mean() / (noisy - clean).var()
    assert measured == pytest.approx(0.1, rel=0.05)


def test_star_has_the_columns_cryodrgn_reads(blob, tmp_path, shared_dir):
    import starfile

    params = ParticleParams(pixel_size=4.0, astigmatism=500.0)
    drive(simulate_particles_job(Ensemble(blob, None), 10, params, seed=0, out_dir=tmp_path))
    ours = starfile.read(tmp_path / "particles.star", always_dict=True)
    columns = set(ours["particles"].columns) | set(ours["optics"].columns)
    theirs = starfile.read(shared_dir / "cryodrgn" / "toy_projections.star", always_dict=True)
    needed = {c for t in theirs.values() for c in t.columns if c.startswith("rln")}
    assert needed <= columns  # parse_ctf_star's columns (cryoDRGN's own test file)
    assert {"rlnAngleRot", "rlnAngleTilt", "rlnAnglePsi", "rlnOriginXAngst", "rlnOriginYAngst",
            "rlnImagePixelSize"} <= columns  # parse_pose_star's
    meta = read_particles_star(tmp_path / "particles.star")
    du, dv = np.asarray(meta.ctf.defocus_u), np.asarray(meta.ctf.defocus_v)
    assert np.all((du - dv) <= 500.0 + 1e-3) and np.any(du != dv)


def test_discrete_mixture_proportions_and_labels(blob, tmp_path):
    other = np.ascontiguousarray(np.flip(blob, axis=2))
    ens = Ensemble(np.stack([blob, other]), None, weights=[0.25, 0.75])
    truth = drive(simulate_particles_job(ens, 2000, ParticleParams(pixel_size=4.0), seed=1, out_dir=tmp_path)).truth
    assert np.mean(truth["state"] == 0) == pytest.approx(0.25, abs=0.03)
    star = read_particles_star(tmp_path / "particles.star")
    assert np.array_equal(star.table["rlnClassNumber"].to_numpy(), truth["state"].to_numpy() + 1)


def test_continuous_coordinate_tags_the_image(blob):
    other = np.roll(blob, 6, axis=2)
    ens = Ensemble(np.stack([blob, other]), None)
    params = ParticleParams(pixel_size=4.0, snr=None, apply_ctf=False)
    sim = drive(simulate_particles_job(ens, 40, params, seed=3))
    images, meta, truth = sim.images, sim.metadata, sim.truth
    u = truth["conformation"].to_numpy()
    assert 0 <= u.min() and u.max() <= 1 and np.all(truth["state"] == -1)
    for i in np.argsort(u)[[0, -1]]:
        r = torch.from_numpy(meta.rotations[i])
        p0 = rotate_volume(torch.from_numpy(blob), r).sum(0).numpy()
        p1 = rotate_volume(torch.from_numpy(other), r).sum(0).numpy()
        expect = (1 - u[i]) * p0 + u[i] * p1
        assert np.corrcoef(images[i].ravel(), expect.ravel())[0, 1] > 0.98


def test_same_seed_same_stack(blob):
    a = drive(simulate_particles_job(Ensemble(blob, None), 5, ParticleParams(pixel_size=4.0), seed=9)).images
    b = drive(simulate_particles_job(Ensemble(blob, None), 5, ParticleParams(pixel_size=4.0), seed=9)).images
    assert np.array_equal(a, b)
