"""Tests of :mod:`cryoforge.sim.tomo`."""

import numpy as np
import pytest
import torch

from cryoforge.conventions import random_rotations, rotation_about_axis
from cryoforge.ctf import electron_wavelength
from cryoforge.geometry import transform_volumes
from cryoforge.sim.tomo import (
    TomoParams,
    project_tilt_series,
    simulate_subtomograms,
    tilt_angles,
    transfer_3d,
    wedge_mask,
)
from tests.helpers import correlation


def test_fourier_slice_identity():
    """The 2-D DFT of a projection equals the 3-D Fourier transform on the central slice ``M^T (kx, ky, 0)``.

    The map is a sum of Gaussians (nearly band-limited), whose 3-D transform is analytic:
    ``F(k) = Σ_j Z exp(-2π² σ² |k|²) exp(-2πi k·c_j)``.
    """
    from cryoforge.sim.density import SIGMA_PER_RESOLUTION, models_to_density

    rng = np.random.default_rng(2)
    centres = rng.uniform(-7, 7, (6, 3)).astype(np.float32)
    vol = models_to_density(centres, ["C"] * 6, 32, 1.0, method="gaussian", resolution=6.0, centre=(0, 0, 0))
    sigma = SIGMA_PER_RESOLUTION * 6.0
    rot = random_rotations(1, 4)[0]
    k = torch.fft.fftfreq(32, dtype=torch.float64)
    ky, kx = torch.meshgrid(k, k, indexing="ij")
    plane = torch.stack([kx, ky, torch.zeros_like(kx)], -1)
    for tilt in (0.0, 35.0, -60.0):
        proj = project_tilt_series(vol, rot, [tilt])[0].double()
        dft = torch.fft.fft2(torch.fft.ifftshift(proj))
        m = (rotation_about_axis((0, 1, 0), tilt).double() @ rot.double())
        kk = plane @ m  # rows are (M^T k)^T
        phase = -2 * np.pi * (kk @ torch.from_numpy(centres).double().T)
        analytic = (6.0 * torch.exp(-2 * np.pi**2 * sigma**2 * (kk**2).sum(-1)))[..., None] * torch.exp(1j * phase)
        analytic = analytic.sum(-1)
        low = (kx**2 + ky**2).sqrt() < 0.35
        err = torch.linalg.norm(dft[low] - analytic[low]) / torch.linalg.norm(analytic[low])
        assert err < 0.02, (tilt, float(err))


def test_wedge_mask_zeroes_exactly_beyond_the_tilt_range():
    n = 24
    mask = wedge_mask((n, n, n), -60, 60, rfft=False).numpy()
    k = np.fft.fftfreq(n)
    kz, _, kx = np.meshgrid(k, k, k, indexing="ij")
    with np.errstate(divide="ignore", invalid="ignore"):
        angle = np.degrees(np.arctan(np.abs(kz) / np.abs(kx)))
    angle[(kx == 0) & (kz != 0)] = 90.0
    axis = (kx == 0) & (kz == 0)
    assert np.all(mask[~axis & (angle > 60 + 1e-6)] == 0)
    assert np.all(mask[~axis & (angle <= 60 - 1e-6)] == 1)
    assert np.all(mask[axis] == 1)
    assert wedge_mask((n, n, n), -90, 90).min() == 1  # no wedge
    with pytest.raises(ValueError, match="tilt_max"):
        wedge_mask((n, n, n), -60, 95)
    with pytest.raises(ValueError, match="tilt_min"):
        tilt_angles(-100, 60, 1)


def test_tilt_angles_seed_scheme():
    assert len(tilt_angles(-60, 60, 1.0)) == 121 and len(tilt_angles(-90, 90, 1.0)) == 180


def test_transfer_zeros_at_analytic_frequencies():
    vs, df, cs = 6.0, 30000.0, 2.7
    params = TomoParams(voxel_size=vs, amplitude_contrast=0.0, mtf=False)
    n = 128
    t = transfer_3d((n, n, n), vs, params.ctf_params(torch.tensor([df])), -90, 90, mtf=False)[0, 0, 0, 1:].numpy()
    k = np.fft.rfftfreq(n, d=vs)[1:]  # CTF(0) = 0 without amplitude contrast
    lam = electron_wavelength(300.0)
    chi = np.pi * lam * df * k**2 - 0.5 * np.pi * cs * 1e7 * lam**3 * k**4
    zeros_expected = k[np.nonzero(np.diff(np.floor(chi / np.pi)))[0]]
    sign_changes = k[np.nonzero(np.diff(np.sign(t)))[0]]
    assert len(sign_changes) == len(zeros_expected) >= 3
    np.testing.assert_allclose(sign_changes, zeros_expected, atol=1.01 / (n * vs))


@pytest.mark.parametrize("snr", [0.1, 0.03])
def test_measured_snr_of_aligned_copies_matches_target(proteasome, snr):
    """SNR = c/(1−c) of two aligned noisy copies (seed 001), pooled over 24 pairs: within ±20 %."""
    params = TomoParams(snr=snr)
    g = torch.Generator().manual_seed(1)
    rots = random_rotations(24, 0)
    vols = proteasome.expand(24, 32, 32, 32)
    d = torch.full((24,), 35000.0)
    x1 = simulate_subtomograms(vols, rots, None, d, -60, 60, params, g)
    x2 = simulate_subtomograms(vols, rots, None, d, -60, 60, params, g)
    c = np.mean([correlation(a, b) for a, b in zip(x1, x2, strict=True)])
    assert c / (1 - c) == pytest.approx(snr, rel=0.2)


def test_noise_free_full_range_reconstruction_recovers_the_map(proteasome):
    rot = random_rotations(1, 7)
    truth = transform_volumes(proteasome[None], rot)[0]
    for rec in ("wbp", "fourier"):
        params = TomoParams(snr=None, apply_ctf=False, mtf=False, reconstruction=rec)
        out = simulate_subtomograms(proteasome[None], rot, None, torch.tensor([3e4]), -90, 90, params)[0]
        assert correlation(out, truth) >= 0.95, rec


def test_explicit_tilt_series_agrees_with_fourier_reconstruction(proteasome):
    """WBP of 121 CTF/MTF-modulated projections ≈ the Fourier-space model (same wedge, same transfer)."""
    rot = random_rotations(1, 3)
    d = torch.tensor([30000.0])
    outs = {rec: simulate_subtomograms(proteasome[None], rot, None, d, -60, 60,
                                       TomoParams(snr=None, reconstruction=rec))[0] for rec in ("fourier", "wbp")}
    assert correlation(outs["fourier"], outs["wbp"]) > 0.95
    # nothing lands in the missing wedge
    ft = torch.fft.rfftn(torch.fft.ifftshift(outs["wbp"])).abs() ** 2
    mask = wedge_mask((32, 32, 32), -60, 60)
    assert ft[mask == 0].mean() < 0.05 * ft[mask == 1].mean()  # interpolation leaks a few per cent


def test_bad_tomo_parameters_name_themselves():
    for kwargs, word in (({"snr": 0}, "snr"), ({"snr": -1}, "snr"), ({"voxel_size": -2}, "voxel_size"),
                         ({"defocus_min": 5e4, "defocus_max": 2e4}, "defocus"), ({"reconstruction": "art"},
                                                                                 "reconstruction")):
        with pytest.raises(ValueError, match=word):
            TomoParams(**kwargs).validate()
