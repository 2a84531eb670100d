"""Tests of :mod:`cryoforge.ctf`."""

import math

import numpy as np
import pytest
import torch
from scipy import constants as C

from cryoforge.ctf import CTFParams, apply_ctf, ctf_2d, electron_wavelength
from tests.helpers import DRGN_PARSED


def wavelength_reference(kv):
    """λ = h / sqrt(2 m e V (1 + e V / (2 m c²))), in Å."""
    v = kv * 1e3
    return C.h / math.sqrt(2 * C.m_e * C.e * v * (1 + C.e * v / (2 * C.m_e * C.c**2))) * 1e10


def analytic_zeros(defocus_a, kv, cs_mm, w, kmax):
    """k (1/Å) where π λ Δf k² − (π/2) Cs λ³ k⁴ + φ_a = nπ, n = 1, 2, …"""
    lam, cs = wavelength_reference(kv), cs_mm * 1e7
    phi = math.atan(w / math.sqrt(1 - w * w))
    zeros, n = [], 1
    while True:
        m = n - phi / math.pi
        disc = (lam * defocus_a) ** 2 - 2 * cs * lam**3 * m
        u = (lam * defocus_a - math.sqrt(disc)) / (cs * lam**3)
        if math.sqrt(u) > kmax:
            return np.array(zeros)
        zeros.append(math.sqrt(u))
        n += 1


def sign_changes(profile, step):
    s = np.sign(profile)
    idx = np.nonzero(s[1:] * s[:-1] < 0)[0]
    return np.array([(i + profile[i] / (profile[i] - profile[i + 1])) * step for i in idx])


def test_wavelength_300kv():
    assert electron_wavelength(300) == pytest.approx(0.019687, abs=2e-6)  # tabulated value


@pytest.mark.parametrize("w", [0.0, 0.07])
def test_zeros_match_theory_300kv_cs27_15um(w):
    n, apix = 1024, 1.0
    p = CTFParams(defocus_u=15000, defocus_v=15000, voltage=300, cs=2.7, amplitude_contrast=w)
    ctf = ctf_2d(p, (n, n), apix).double().numpy()
    step = 1 / (n * apix)
    kmax = 0.3
    along_x = ctf[0, : int(kmax / step)]
    along_y = ctf[: int(kmax / step), 0]
    expected = analytic_zeros(15000, 300, 2.7, w, kmax - 2 * step)
    assert len(expected) > 20
    for profile in (along_x, along_y):
        found = sign_changes(profile, step)
        assert len(found) == len(expected)
        assert np.abs(found - expected).max() < 0.1 * step  # a tenth of a Fourier pixel


def test_amplitude_contrast_at_origin_and_sign():
    p = CTFParams(amplitude_contrast=0.1)
    c = ctf_2d(p, (64, 64), 1.0)
    assert c[0, 0].item() == pytest.approx(0.1, abs=1e-6)  # sin(atan(w / sqrt(1-w²))) = w


def test_astigmatism_angle_is_from_x_axis():
    n, apix = 512, 1.0
    step = 1 / (n * apix)
    for angle, (dx, dy) in ((0.0, (20000, 10000)), (90.0, (10000, 20000))):
        p = CTFParams(defocus_u=20000, defocus_v=10000, defocus_angle=angle, amplitude_contrast=0.0, cs=0.0)
        c = ctf_2d(p, (n, n), apix).double().numpy()
        first_x = sign_changes(c[0, : n // 2], step)[0]
        first_y = sign_changes(c[: n // 2, 0], step)[0]
        lam = electron_wavelength(300)
        assert first_x == pytest.approx(math.sqrt(1 / (lam * dx)), abs=0.2 * step)
        assert first_y == pytest.approx(math.sqrt(1 / (lam * dy)), abs=0.2 * step)


def test_bfactor_envelope_and_batching():
    params = CTFParams(defocus_u=np.array([10000.0, 20000.0]), defocus_v=np.array([10000.0, 20000.0]),
                       bfactor=np.array([0.0, 0.0]))
    c0 = ctf_2d(params, (64, 64), 2.0)
    assert c0.shape == (2, 64, 33)
    params.bfactor = np.array([50.0, 200.0])
    cb = ctf_2d(params, (64, 64), 2.0)
    k2 = (torch.fft.fftfreq(64, 2.0)[:, None] ** 2 + torch.fft.rfftfreq(64, 2.0)[None] ** 2)
    for i, b in enumerate((50.0, 200.0)):
        np.testing.assert_allclose(cb[i].numpy(), (c0[i] * torch.exp(-b * k2 / 4)).numpy(), atol=1e-6)


def test_apply_ctf_flips_phases():
    img = torch.randn(64, 64)
    p = CTFParams(defocus_u=20000, defocus_v=20000)
    out = apply_ctf(img, p, 1.5)
    ratio = torch.fft.rfftn(out) / torch.fft.rfftn(img)
    np.testing.assert_allclose(ratio.real.numpy(), ctf_2d(p, (64, 64), 1.5).numpy(), atol=1e-4)


# 1. DefocusU < DefocusV
def test_u_less_than_v_is_the_same_ellipse_and_finite():
    a = ctf_2d(CTFParams(defocus_u=16000, defocus_v=20000, defocus_angle=-60.0), (32, 32), 1.5)
    b = ctf_2d(CTFParams(defocus_u=20000, defocus_v=16000, defocus_angle=30.0), (32, 32), 1.5)
    assert torch.isfinite(a).all()
    np.testing.assert_allclose(a.numpy(), b.numpy(), atol=1e-5)


def test_envelope_never_exceeds_one():
    p = CTFParams(defocus_u=20000, defocus_v=20000, bfactor=-507.0, scale=1.0)
    c = ctf_2d(p, (64, 64), 0.98)  # Nyquist 1.96 Å: RELION's envelope would reach ×9.3·10⁶ there
    assert c.abs().max().item() <= 1.0 + 1e-6
    plain = ctf_2d(CTFParams(defocus_u=20000, defocus_v=20000), (64, 64), 0.98)
    np.testing.assert_allclose(c.numpy(), plain.numpy(), atol=1e-6)
    half = ctf_2d(CTFParams(defocus_u=20000, defocus_v=20000, bfactor=100.0, scale=0.5), (64, 64), 0.98)
    assert half.abs().max().item() <= 0.5 + 1e-6


# 9 and the field-by-field comparison with cryoDRGN 4.3.1
@pytest.mark.parametrize("case", range(3))
def test_ctf_is_the_negative_of_cryodrgns(case):
    rec = DRGN_PARSED["ctf"][case]
    dfu, dfv, ang, kv, cs, w, ps = rec["params"]
    ours = ctf_2d(CTFParams(dfu, dfv, ang, kv, cs, w, 0.0, ps), (16, 16), rec["apix"]).double().numpy()
    theirs = np.asarray(rec["values"])
    assert ours[0, 0] == pytest.approx(-theirs[0, 0], abs=1e-6) and ours[0, 0] > 0  # CTF(0) = +w here, −w there
    # cryoDRGN's wavelength 12.2639 / sqrt(V + 0.97845e-6 V²) is 3·10⁻⁵ shorter than the exact one torch-ctf uses:
    # ≤ 0.007 rad of phase at Nyquist for these defoci
    np.testing.assert_allclose(ours, -theirs, atol=0.01)
    assert np.corrcoef(ours.ravel(), theirs.ravel())[0, 1] < -0.9999
