"""Tests of :mod:`cryoforge.multicryogan.data`."""

import warnings
from pathlib import Path

import numpy as np
import pytest

from cryoforge.conventions import random_rotations
from cryoforge.ctf import CTFParams
from cryoforge.io.star import StarWarning
from cryoforge.latent import ManifoldError
from cryoforge.multicryogan.data import fourier_crop, load_stack
from cryoforge.multicryogan.projector import (
    gaussian_blobs,
    project_fourier,
)
from tests.helpers import METADATA, R31, read_quiet, relative_error


def _write_stack(path, n, size, star_ctf=True):
    from cryoforge.io.mrc import write_mrc
    from cryoforge.io.star import ParticleMetadata, write_particles_star

    write_mrc(path, np.random.default_rng(0).standard_normal((n, size, size)).astype(np.float32), 3.0, stack=True)
    ctf = CTFParams(defocus_u=np.full(n, 15000.0), defocus_v=np.full(n, 15000.0), defocus_angle=np.zeros(n)) \
        if star_ctf else None
    star = path.with_suffix(".star")
    write_particles_star(star, ParticleMetadata(image_names=[f"{i + 1}@{path.name}" for i in range(n)],
                                                ctf=ctf, pixel_size=3.0))
    return star


def test_fourier_crop_keeps_band_limited_content():
    vol, blobs = gaussian_blobs(32, seed=4, sigma=2.5)
    img = project_fourier(vol[None], random_rotations(1, 0))
    small = fourier_crop(img, 16)
    assert small.shape == (1, 16, 16)
    assert float(small.mean()) == pytest.approx(float(img.mean()), rel=1e-4)
    assert relative_error(small[0], img[0, ::2, ::2]) < 0.1


def test_bad_input_mixed_sizes_and_missing_ctf(tmp_path):
    a, b = tmp_path / "a.mrcs", tmp_path / "b.mrcs"
    star_a = _write_stack(a, 4, 16)
    _write_stack(b, 4, 32)
    with pytest.raises(ManifoldError, match="mixed image sizes.*a.mrcs: 16².*b.mrcs: 32²"):
        load_stack([a, b], use_ctf=False)
    nctf = tmp_path / "n.mrcs"
    star_n = _write_stack(nctf, 4, 16, star_ctf=False)
    with pytest.raises(ManifoldError, match="no CTF columns.*--no-ctf"):
        load_stack(nctf, star_n)
    with pytest.raises(ManifoldError, match="STAR file.*--no-ctf"):
        load_stack(a)
    assert load_stack(nctf, star_n, use_ctf=False).ctf is None  # allowed when the user says so
    assert load_stack(a, star_a).ctf is not None
    with pytest.raises(ManifoldError, match="4 particles for 8 images"):
        load_stack([a, a], star_a)


def test_multicryogan_draws_each_images_pixel_size():
    from cryoforge.multicryogan.data import load_stack

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", StarWarning)
        data = load_stack(METADATA / "relion31_optics6.mrcs", R31, size=8)  # 16² → 8²: the pixel size doubles
    meta = read_quiet(R31)
    np.testing.assert_allclose(data.pixel_sizes, meta.pixel_sizes * 2)
    rows = np.arange(18)
    np.testing.assert_allclose(data.ctf_pixel_sizes(rows), meta.pixel_sizes * 2)
    np.testing.assert_allclose(data.ctf_rows(rows).cs, meta.ctf.cs)


def test_several_stacks_are_read_a_batch_at_a_time(tmp_path):
    """Two stacks on disk read as one: a batch's rows are mrcfile's rows of the stack that holds them, and reading
    every image of 48 MiB of float16 stacks leaves the resident memory where it was."""
    import mrcfile

    from cryoforge.io.mrc import StoredStacks
    from cryoforge.io.mrc import write_mrc as write

    rng = np.random.default_rng(1)
    for name, n in (("a.mrcs", 1000), ("b.mrcs", 536)):
        write(tmp_path / name, rng.normal(size=(n, 128, 128)).astype(np.float16), 2.0, stack=True, dtype="float16")
    data = load_stack([tmp_path / "a.mrcs", tmp_path / "b.mrcs"], use_ctf=False)
    assert isinstance(data.images, StoredStacks) and data.n == 1536
    with mrcfile.open(tmp_path / "a.mrcs") as a, mrcfile.open(tmp_path / "b.mrcs") as b:
        theirs = np.concatenate([np.asarray(a.data[998:], np.float32), np.asarray(b.data[:3], np.float32)])
    np.testing.assert_array_equal(data.images[np.arange(998, 1003)], theirs)
    np.testing.assert_array_equal(data.images[1000], theirs[2])
    with pytest.raises(IndexError):
        data.images[np.array([1536])]
    rss = lambda: int(Path("/proc/self/status").read_text().split("VmRSS:")[1].split()[0]) / 1024  # noqa: E731
    before = rss()
    total = sum(float(data.batch(np.arange(s, min(s + 64, 1536))).sum()) for s in range(0, 1536, 64))
    assert np.isfinite(total) and rss() - before < 24  # 48 MiB read; its pages did not stay
