"""Tests of :mod:`cryoforge.manifold.analytic`."""

import json

import imageio.v3 as iio
import numpy as np
import pytest

from cryoforge.jobs import JobError, drive
from cryoforge.manifold import ManifoldError, make_path
from cryoforge.manifold.analytic import AnalyticManifold
from cryoforge.manifold.movie import movie_job


def test_analytic_decode_batches_match_single_points():
    m = AnalyticManifold(3, box=24)
    z = m.sample(5, 1)
    batch = m.decode(z).numpy()
    assert batch.shape == (5, 24, 24, 24) and batch.dtype == np.float32
    np.testing.assert_allclose(batch[3], m.decode_one(z[3]), atol=1e-6)
    assert not np.allclose(batch[0], batch[1])  # different latents, different shapes


def test_analytic_first_coordinate_turns_the_arm():
    m = AnalyticManifold(2, box=32)
    c, _, _ = m.blobs(__import__("torch").tensor([[0.0, 0.0], [10.0, 0.0]]))
    tip0, tip1 = c[0, 2].numpy(), c[1, 2].numpy()
    angle = np.degrees(np.arctan2(tip1[1], tip1[0]) - np.arctan2(tip0[1], tip0[0]))
    assert angle == pytest.approx(75.0, abs=0.5)


@pytest.mark.parametrize("z, msg", [(np.zeros((2, 3)), "2 coordinates"), ([np.nan, 0.0], "NaN")])
def test_bad_latent_points(z, msg):
    with pytest.raises(ManifoldError, match=msg):
        AnalyticManifold(2).decode(z)


@pytest.mark.parametrize("suffix, renderer", [(".gif", "slices"), (".mp4", "projection")])
def test_fallback_movie_has_n_frames_and_the_z_path(tmp_path, suffix, renderer):
    m = AnalyticManifold(2, box=16)
    path = make_path([[-2, 0], [2, 0]], 7)
    res = drive(movie_job(m, path, tmp_path / f"walk{suffix}", fps=5, renderer=renderer))
    frames = iio.imread(tmp_path / f"walk{suffix}")
    assert res.frames == 7 and frames.shape[0] == 7 and frames.shape[-1] == 3
    assert not np.array_equal(frames[0], frames[-1])  # the hinge moved
    np.testing.assert_allclose(np.loadtxt(res.z_path), path, atol=1e-5)
    assert json.loads((tmp_path / f"walk{suffix}.json").read_text())["renderer"] == renderer


def test_movie_bad_output_suffix(tmp_path):
    with pytest.raises(JobError, match=".mp4 or .gif"):
        drive(movie_job(AnalyticManifold(2, box=16), np.zeros((3, 2)), tmp_path / "a.avi", renderer="slices"))
