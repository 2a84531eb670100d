"""Tests of :mod:`cryoforge.fourier`."""

import math

import numpy as np
import pytest
import torch
from scipy import ndimage

from cryoforge.fourier import bfactor, fourier_shift, freq_radius, gaussian_filter, lowpass, normalize, spherical_mask
from cryoforge.geometry import transform_volumes


def _gaussian(n, centre_xyz, sigma):
    p = torch.stack(torch.meshgrid(*[torch.arange(n, dtype=torch.float64)] * 3, indexing="ij")[::-1], -1)
    return torch.exp(-((p - torch.tensor(centre_xyz, dtype=torch.float64)) ** 2).sum(-1) / (2 * sigma**2))


def test_integer_fourier_shift_is_a_roll():
    v = torch.randn(12, 16, 20, generator=torch.Generator().manual_seed(0))
    out = fourier_shift(v, (3.0, -2.0, 5.0))  # (x, y, z)
    np.testing.assert_allclose(out.numpy(), torch.roll(v, (5, -2, 3), dims=(0, 1, 2)).numpy(), atol=1e-5)


def test_subvoxel_shift_of_gaussian_is_exact():
    n, c, t = 32, (16.0, 16.0, 16.0), (0.4, -1.3, 2.7)
    v = _gaussian(n, c, 2.0).float()
    expected = _gaussian(n, [ci + ti for ci, ti in zip(c, t, strict=True)], 2.0).float()
    np.testing.assert_allclose(fourier_shift(v, torch.tensor(t)).numpy(), expected.numpy(), atol=1e-5)
    # trilinear interpolation in grid_sample agrees up to its smoothing
    b = transform_volumes(v, shifts=torch.tensor(t))
    assert torch.corrcoef(torch.stack([b.flatten(), expected.flatten()]))[0, 1] > 0.995


def test_batched_fourier_shift():
    v = torch.randn(2, 8, 8, 8)
    out = fourier_shift(v, torch.tensor([[1.0, 0, 0], [0, 0, 2.0]]))
    assert torch.allclose(out[0], torch.roll(v[0], 1, 2), atol=1e-5)
    assert torch.allclose(out[1], torch.roll(v[1], 2, 0), atol=1e-5)


def test_lowpass_removes_power_beyond_cutoff():
    v = torch.randn(32, 32, 32, generator=torch.Generator().manual_seed(0))
    out = lowpass(v, resolution=8.0, voxel_size=2.0)
    power = torch.abs(torch.fft.rfftn(out)) ** 2
    k = freq_radius(v.shape, 2.0, rfft=True)
    assert power[k > 1 / 8.0].max() < 1e-6
    assert power[k < 1 / 10.0].mean() > 1.0


def test_gaussian_filter_matches_scipy():
    v = torch.randn(24, 24, 24, generator=torch.Generator().manual_seed(0))
    sigma_a, vs = 3.0, 1.5
    ours = gaussian_filter(v, sigma_a, vs).numpy()
    ref = ndimage.gaussian_filter(v.numpy(), sigma_a / vs, mode="wrap", truncate=8)
    np.testing.assert_allclose(ours, ref, atol=2e-3)


def test_bfactor_envelope():
    """The output's spectrum is the input's times exp(−B k²/4), to float32 rounding of the largest coefficient (a
    ratio of magnitudes failed once: at Nyquist the envelope is 0.009 and a small coefficient's rounding is 0.1 %)."""
    v = torch.randn(16, 16, 16, generator=torch.Generator().manual_seed(0))
    out = bfactor(v, 100.0, 2.0)
    k = freq_radius(v.shape, 2.0, rfft=True)
    fv = torch.fft.rfftn(v)
    diff = (torch.fft.rfftn(out) - torch.exp(-100 * k**2 / 4) * fv).abs().max()
    assert diff < 1e-5 * fv.abs().max()
    assert torch.fft.rfftn(out)[8, 8, 8].abs() < 0.01 * fv[8, 8, 8].abs()  # Nyquist corner: damped by exp(−4.7)


def test_normalize_in_mask_and_batched():
    v = torch.randn(3, 16, 16, 16) * 5 + 2
    out = normalize(v)
    assert torch.allclose(out.mean((1, 2, 3)), torch.zeros(3), atol=1e-5)
    assert torch.allclose(out.std((1, 2, 3), unbiased=False), torch.ones(3), atol=1e-4)
    m = spherical_mask((16, 16, 16), 5)
    o = normalize(v[0], m)[m > 0]
    assert o.mean().abs() < 1e-5 and abs(o.std(unbiased=False).item() - 1) < 1e-4


def test_spherical_mask_volume_and_soft_edge():
    m = spherical_mask((64, 64, 64), 20.0)
    assert m.sum().item() == pytest.approx(4 / 3 * math.pi * 20**3, rel=0.01)
    s = spherical_mask((64, 64, 64), 20.0, soft_edge=6.0)
    assert s[32, 32, 32] == 1.0 and s[32, 32, 32 + 26] == 0.0
    assert 0.4 < s[32, 32, 32 + 23].item() < 0.6  # half way through the edge


def test_image_stack_is_filtered_per_image_with_ndim_2():
    stack = torch.zeros(3, 32, 32)
    stack[1, 16, 16] = 1.0  # an impulse in image 1 only
    out = lowpass(stack, resolution=8.0, voxel_size=2.0, ndim=2)
    assert out[0].abs().max() < 1e-6 and out[2].abs().max() < 1e-6  # no leakage between images
    np.testing.assert_allclose(out[1].numpy(), lowpass(stack[1], 8.0, 2.0).numpy(), atol=1e-6)
    norm = normalize(torch.randn(4, 16, 16) * 3 + 1, ndim=2)
    assert torch.allclose(norm.mean((1, 2)), torch.zeros(4), atol=1e-5)
    with pytest.raises(ValueError, match="ndim"):
        lowpass(stack, 8.0, ndim=4)


def _centred_crop_reference(vols: np.ndarray, m: int) -> np.ndarray:
    """Fourier crop by the textbook route (numpy, float64): centred spectrum, central m³, real part back."""
    n = vols.shape[-1]
    ax = (-3, -2, -1)
    ft = np.fft.fftshift(np.fft.fftn(np.fft.ifftshift(vols, axes=ax), axes=ax), axes=ax)
    c = n // 2 - m // 2
    ft = ft[..., c:c + m, c:c + m, c:c + m]
    return np.fft.fftshift(np.fft.ifftn(np.fft.ifftshift(ft, axes=ax), axes=ax), axes=ax).real * (m / n) ** 3


@pytest.mark.parametrize(("n", "m"), [(32, 16), (32, 24), (24, 10), (17, 8), (16, 9)])
def test_downsample_matches_the_centred_crop(n, m):
    from cryoforge.fourier import downsample, downsampled_rfft

    x = np.random.default_rng(n + m).normal(size=(3, n, n, n))  # white noise: every Nyquist edge carries power
    ref = _centred_crop_reference(x, m)
    out = downsample(torch.from_numpy(x.astype(np.float32)), m).numpy()
    assert out.shape == (3, m, m, m)
    assert np.abs(out - ref).max() < 1e-5 * np.abs(ref).max()
    spec = downsampled_rfft(torch.from_numpy(x.astype(np.float32)), m).numpy()
    assert np.abs(spec - np.fft.rfftn(ref, axes=(-3, -2, -1))).max() < 1e-4 * np.abs(spec).max()


def test_downsample_keeps_a_centred_gaussian_centred_and_scales_its_width():
    from cryoforge.fourier import downsample

    n, m, sigma = 32, 16, 3.0
    g = _gaussian(n, (n // 2,) * 3, sigma).float()
    d = downsample(g, m)
    small = _gaussian(m, (m // 2,) * 3, sigma * m / n).float()
    expected = small * float(g.sum()) * (m / n) ** 3 / float(small.sum())  # the zero frequency scales by (m/n)³
    assert tuple(np.unravel_index(int(d.argmax()), d.shape)) == (m // 2,) * 3
    assert float((d - expected).abs().max()) < 2e-3 * float(d.max())


@pytest.mark.parametrize(("n", "m"), [(16, 32), (16, 24), (10, 32), (9, 16)])
def test_upsample_matches_the_centred_pad(n, m):
    from cryoforge.fourier import upsample

    x = np.random.default_rng(n * m).normal(size=(2, n, n, n))
    ax = (-3, -2, -1)
    c = m // 2 - n // 2
    ft = np.zeros((2, m, m, m), complex)
    ft[..., c:c + n, c:c + n, c:c + n] = np.fft.fftshift(np.fft.fftn(np.fft.ifftshift(x, axes=ax), axes=ax), axes=ax)
    ref = np.fft.fftshift(np.fft.ifftn(np.fft.ifftshift(ft, axes=ax), axes=ax), axes=ax).real * (m / n) ** 3
    out = upsample(torch.from_numpy(x.astype(np.float32)), m).numpy()
    assert np.abs(out - ref).max() < 1e-5 * np.abs(ref).max()
    if m == 2 * n:  # sinc interpolation passes through the samples: voxel j lands on 2j (centre n/2 → m/2)
        assert np.allclose(out[:, ::2, ::2, ::2], x, atol=1e-4)
