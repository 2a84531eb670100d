"""Contrast transfer function, RELION parameterisation, computed with teamtomo's torch-ctf.

torch-ctf (0.6) computes ``CTF = -sin(total phase)`` with defocus in µm; this module takes RELION's
units (defocus U/V in Å, defocus angle in degrees from the x axis, Cs in mm, voltage in kV) and adds
the B-factor envelope ``exp(-B k^2 / 4)``, which torch-ctf does not model. Measured sign: ``CTF(0) =
-sin(-φ_a) = +sin(φ_a) > 0`` for amplitude contrast ``w`` with ``φ_a = atan(w / sqrt(1 - w^2))``; the
zeros are where ``π λ Δf k² - (π/2) Cs λ³ k⁴ + φ_a = nπ`` (tests/engine/test_ctf.py).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields

import torch
from scipy import constants as C
from torch_ctf import calculate_ctf_2d
from torch_ctf.ctf_utils import calculate_total_phase_shift

from .fourier import freq_radius


@dataclass
class CTFParams:
    """One CTF (scalars) or a batch (1-D arrays of equal length). RELION's names and units."""

    defocus_u: float = 15000.0  # Å, underfocus positive (rlnDefocusU)
    defocus_v: float = 15000.0  # Å (rlnDefocusV)
    defocus_angle: float = 0.0  # degrees, direction of defocus_u from the x axis (rlnDefocusAngle)
    voltage: float = 300.0  # kV (rlnVoltage)
    cs: float = 2.7  # mm (rlnSphericalAberration)
    amplitude_contrast: float = 0.1  # fraction (rlnAmplitudeContrast)
    bfactor: float = 0.0  # Å² (rlnCtfBfactor), envelope exp(-B k^2 / 4)
    phase_shift: float = 0.0  # degrees (rlnPhaseShift)

    def as_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def field_names(cls) -> list[str]:
        return [f.name for f in fields(cls)]


def electron_wavelength(voltage_kv: float) -> float:
    """Relativistic electron wavelength in Å for an acceleration voltage in kV."""
    v = float(voltage_kv) * 1e3
    p = math.sqrt(2 * C.m_e * C.e * v * (1 + C.e * v / (2 * C.m_e * C.c**2)))
    return C.h / p * 1e10


def _t(x, device) -> torch.Tensor:
    return torch.as_tensor(x, dtype=torch.float32, device=device)


def ctf_2d(params: CTFParams, shape, pixel_size: float, rfft: bool = True, fftshift: bool = False, device=None):
    """CTF on the 2-D FFT grid of ``shape = (Y, X)``: ``(Y, X//2+1)`` when ``rfft``; batched as ``(N, …)``.

    ``pixel_size`` is in Å. With a batch of parameters (1-D arrays), the result is ``(N, *fft_shape)``.
    """
    if len(shape) != 2:
        raise ValueError(f"ctf_2d needs an image shape (Y, X); got {tuple(shape)}")
    du, dv = _t(params.defocus_u, device), _t(params.defocus_v, device)
    ctf = calculate_ctf_2d(
        defocus=(du + dv) / 2 / 1e4,
        astigmatism=(du - dv) / 2 / 1e4,
        astigmatism_angle=_t(params.defocus_angle, device),
        voltage=_t(params.voltage, device),
        spherical_aberration=_t(params.cs, device),
        amplitude_contrast=_t(params.amplitude_contrast, device),
        phase_shift=_t(params.phase_shift, device),
        pixel_size=float(pixel_size),
        image_shape=tuple(int(s) for s in shape),
        rfft=rfft,
        fftshift=fftshift,
    )
    b = _t(params.bfactor, device)
    if torch.any(b != 0):
        k = freq_radius(shape, pixel_size, rfft=rfft, device=ctf.device)
        if fftshift:
            k = torch.fft.fftshift(k, dim=(-2,) if rfft else (-2, -1))
        ctf = ctf * torch.exp(-b.reshape(*b.shape, 1, 1) * k * k / 4)
    return ctf


def apply_ctf(images, params: CTFParams, pixel_size: float):
    """Multiply ``(…, Y, X)`` images by their CTF in Fourier space (phase flips and envelope included)."""
    imgs = torch.as_tensor(images)
    ctf = ctf_2d(params, imgs.shape[-2:], pixel_size, rfft=True, device=imgs.device).to(imgs.dtype)
    ft = torch.fft.rfftn(imgs, dim=(-2, -1)) * ctf
    return torch.fft.irfftn(ft, s=imgs.shape[-2:], dim=(-2, -1))


def ctf_of_k2(params: CTFParams, k2, device=None):
    """Isotropic CTF (``defocus_u`` only, B envelope included) at squared frequencies ``k2`` (1/Å²).

    For 3-D filters such as a tomogram's transfer (:mod:`cryoforge.sim.tomo`): with a batch of
    parameters the result is ``(N, *k2.shape)``. Uses torch-ctf's phase, like :func:`ctf_2d`.
    """
    k2 = torch.as_tensor(k2, dtype=torch.float32, device=device)
    extra = (1,) * k2.ndim

    def p(x):
        x = _t(x, k2.device)
        return x.reshape(*x.shape, *extra)

    phase = calculate_total_phase_shift(
        defocus_um=p(params.defocus_u) / 1e4, voltage_kv=p(params.voltage), spherical_aberration_mm=p(params.cs),
        phase_shift_degrees=p(params.phase_shift), amplitude_contrast_fraction=p(params.amplitude_contrast),
        fftfreq_grid_angstrom_squared=k2)
    return -torch.sin(phase) * torch.exp(-p(params.bfactor) * k2 / 4)
