"""Tests of :mod:`cryoforge.sim.tomogram`: the truth list places every particle where the reconstruction shows
it, particles do not overlap, the files other tools read, and refusals."""

import numpy as np
import pytest
import torch

from cryoforge.io import read_mrc
from cryoforge.io.tomo_particles import read_particle_list
from cryoforge.jobs import drive
from cryoforge.sim.tomogram import TomogramParams, place_particles, simulate_tomogram_job
from tests.helpers import correlation, phantom_map


@pytest.fixture(scope="module")
def clean(tmp_path_factory):
    """A noise-free, CTF-free tomogram of 6 particles: the reconstruction must match the density."""
    maps = phantom_map(20)[None].numpy()
    params = TomogramParams(shape=(96, 80, 32), voxel_size=6.0, n_particles=6, tilt_step=3.0, snr=None,
                            thickness=180.0, apply_ctf=False, mtf=False, seed=1)
    out = tmp_path_factory.mktemp("tomo") / "sim"
    return drive(simulate_tomogram_job(maps, ["blob"], params, out)), maps[0], out


def test_the_truth_list_puts_each_particle_where_the_tomogram_shows_it(clean):
    sim, ref, out = clean
    assert sim.tomogram.shape == (32, 80, 96) and len(sim.particles) == 6
    # the reconstruction (within its wedge) is the density; the particles sit where the list says
    assert correlation(sim.tomogram.sum(0), sim.density.sum(0)) > 0.9
    from cryoforge.geometry import transform_volumes
    from cryoforge.tomograms.extract import crop_subtomograms

    centres = sim.particles.voxels(6.0, sim.tomogram.shape)[:, ::-1]
    boxes, edge = crop_subtomograms(sim.density, centres, 20)
    truth = transform_volumes(torch.from_numpy(ref)[None].expand(6, -1, -1, -1),
                              torch.from_numpy(sim.particles.rotations).float())
    assert not edge.any()
    assert min(correlation(b, t) for b, t in zip(boxes.numpy(), truth.numpy(), strict=True)) > 0.9
    # the files: RELION 5 particles, the tomogram with its voxel size, the tilt angles
    star = read_particle_list(out / "particles.star")
    np.testing.assert_allclose(star.positions, sim.particles.positions, atol=1e-3)
    vol, info = read_mrc(out / "tomogram.mrc")
    assert vol.shape == (32, 80, 96) and info.voxel_size[0] == pytest.approx(6.0)
    tlt = np.loadtxt(out / "tiltseries.tlt")
    assert tlt[0] == -60 and tlt[-1] == 60 and read_mrc(out / "tiltseries.mrcs")[0].shape == (41, 80, 96)


def test_noise_reaches_the_stated_snr_and_particles_never_overlap():
    maps = phantom_map(20)[None].numpy()
    params = TomogramParams(shape=(96, 80, 32), voxel_size=6.0, n_particles=6, tilt_step=3.0, snr=0.5,
                            thickness=180.0, seed=1)
    sim = drive(simulate_tomogram_job(maps, ["blob"], params))
    assert sim.report["snr_in_particle_boxes"] == pytest.approx(0.5, rel=1e-3) and sim.noise_sigma > 0
    radii = [5.0, 8.0]
    centres, kinds = place_particles(radii, np.arange(60) % 2, (100, 100, 40), 30.0, seed=3)
    r = np.asarray(radii)[kinds]
    d = np.linalg.norm(centres[:, None] - centres[None], axis=-1) + np.eye(len(centres)) * 1e9
    assert len(centres) > 20 and (d >= r[:, None] + r[None] - 1e-9).all()
    assert (np.abs(centres[:, 2]) <= 15 - r + 1e-9).all()  # inside the slab


def test_refusals():
    maps = phantom_map(20)[None].numpy()
    with pytest.raises(Exception, match="snr must be a positive"):
        drive(simulate_tomogram_job(maps, ["a"], TomogramParams(shape=(64, 64, 32), snr=-1.0)))
    with pytest.raises(Exception, match="does not fit"):
        drive(simulate_tomogram_job(maps, ["a"], TomogramParams(shape=(64, 64, 16))))
    with pytest.raises(Exception, match="1 maps but 2 names"):
        drive(simulate_tomogram_job(maps, ["a", "b"], TomogramParams(shape=(64, 64, 32))))
