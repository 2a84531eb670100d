"""Tests of :mod:`cryoforge.align.dct`."""

import numpy as np
import torch
from scipy.fft import dctn, idctn

from cryoforge.align.dct import SpectralPool3d, spectral_pool_matrix


def _reference_pool(x: np.ndarray, size: int, keep: int) -> np.ndarray:
    """scipy: orthonormal DCT → crop to size³ → zero beyond keep → inverse DCT, constant-preserving scale."""
    c = dctn(x, norm="ortho", axes=(-3, -2, -1))[..., :size, :size, :size].copy()
    c[..., keep:, :, :] = 0
    c[..., :, keep:, :] = 0
    c[..., :, :, keep:] = 0
    return idctn(c, norm="ortho", axes=(-3, -2, -1)) * (size / x.shape[-1]) ** 1.5


def test_dct_pooling_equals_reference_dct_crop_idct():
    x = np.random.default_rng(0).normal(size=(2, 3, 30, 30, 30))
    out = SpectralPool3d(30, 26, 22)(torch.from_numpy(x).float()).numpy()
    np.testing.assert_allclose(out, _reference_pool(x, 26, 22), atol=2e-4)


def test_dct_pooling_keeps_constants_and_gradchecks():
    pool = SpectralPool3d(6, 4, 3)
    np.testing.assert_allclose(pool(torch.full((1, 1, 6, 6, 6), 2.5)).numpy(), 2.5, atol=1e-5)
    x = torch.randn(1, 2, 6, 6, 6, dtype=torch.float64, requires_grad=True)
    pool.matrix = spectral_pool_matrix(6, 4, 3)  # float64 for gradcheck
    assert torch.autograd.gradcheck(pool, (x,))
