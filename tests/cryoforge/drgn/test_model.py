"""Tests of :mod:`cryoforge.drgn.model`."""

import numpy as np
import pytest
import torch

from cryoforge.drgn import (
    DrgnManifold,
    htn_center,
    ihtn_center,
    lattice_coords,
)
from tests.helpers import random_drgn_run


def test_hartley_round_trip():
    v = torch.randn(2, 12, 12, 12)
    np.testing.assert_allclose(ihtn_center(htn_center(v)), v, atol=1e-5)


@pytest.mark.parametrize("domain, pe", [("hartley", "gaussian"), ("hartley", "geom_lowf"), ("fourier", "geom_lowf"),
                                        ("fourier", "gaussian")])
def test_fourier_slice_of_decoded_volume_equals_decoder_on_rotated_lattice(tmp_path, domain, pe):
    """Projection along y of the decoded volume ↔ the decoder on the central plane turned by 90° about x
    (k = (x, 0, z)): the 2-D Hartley transform of the projection equals those decoder values (Fourier slice)."""
    random_drgn_run(tmp_path, domain, pe)
    m = DrgnManifold(tmp_path)
    z = np.array([0.4, -1.0], np.float32)
    vol = m.decode(z)[0]
    proj = vol.sum(1)  # (Z, X): projection along y
    f = torch.fft.fftshift(torch.fft.fft2(torch.fft.fftshift(proj)))
    ht2 = (f.real - f.imag).numpy()
    D = m.D
    plane = lattice_coords(D)[:, D // 2]  # (z, x) indices, k = (x, 0, z): the rotated central plane
    k = plane.reshape(-1, 3)
    zt = torch.tensor(z)[None]
    with torch.no_grad():
        out = m.decoder(k, zt)[0]
        if domain == "fourier":  # Hermitian completion as the decoder defines it: H(k) = a−b, H(−k) = a+b
            flip = (k[:, 2] > 0) | ((k[:, 2] == 0) & (k[:, 0] > 0))
            mirrored = m.decoder(-k, zt)[0]
            h = torch.where(flip, mirrored[:, 0] + mirrored[:, 1], out[:, 0] - out[:, 1])
            h = torch.where(k.pow(2).sum(-1) <= 0.25, h, torch.zeros_like(h))
        else:
            h = out[:, 0]
    expected = (h.view(D, D)[:-1, :-1] * m.norm[1] + m.norm[0]).numpy()  # the k_y = 0 plane of the lattice
    np.testing.assert_allclose(ht2, expected, rtol=1e-3, atol=1e-3 * np.abs(expected).max())


@pytest.mark.parametrize("domain", ["hartley", "fourier"])
def test_batched_decode_equals_slice_by_slice(tmp_path, domain):
    random_drgn_run(tmp_path, domain, "geom_full" if domain == "fourier" else "linear_lowf", D=13)
    m = DrgnManifold(tmp_path)
    z = m.sample(3, 0)
    np.testing.assert_allclose(m.decode(z), m.decode_slicewise(z), atol=1e-5)


def test_lowpass_preview_is_the_centre_of_the_full_volumes_spectrum():
    from cryoforge.drgn.model import CoordinateDecoder, decode_lowpass, decode_volumes

    torch.manual_seed(0)
    dec = CoordinateDecoder(33, 0, 2, 16, domain="hartley")  # 32³ volumes
    with torch.no_grad():
        full = decode_volumes(dec, None, (0.0, 1.0))[0]
        low = decode_lowpass(dec, None, (0.0, 1.0), 16)[0]
    assert low.shape == (16, 16, 16)
    f = torch.fft.fftshift(torch.fft.fftn(full))
    crop = f[8:24, 8:24, 8:24]
    want = torch.fft.ifftn(torch.fft.ifftshift(crop)).real * (16 / 32) ** 3
    # equal up to the crop's Nyquist planes (their Hartley partners lie outside the crop); a random decoder's flat
    # spectrum gives those planes an unusually large share (measured: r = 0.987, max |Δ| 3.5 % of the peak)
    assert np.corrcoef(low.numpy().ravel(), want.numpy().ravel())[0, 1] > 0.98
    assert float((low - want).abs().max()) < 0.05 * float(want.abs().max())
