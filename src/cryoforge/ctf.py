"""Contrast transfer function, RELION parameterisation, computed with teamtomo's torch-ctf.

torch-ctf (0.6) computes ``CTF = -sin(total phase)`` with defocus in µm; this module takes RELION's
units (defocus U/V in Å, defocus angle in degrees from the x axis, Cs in mm, voltage in kV) and adds
the B-factor envelope ``exp(-B k^2 / 4)`` and RELION's scale factor, which torch-ctf does not model.
The sign is stated in :mod:`cryoforge.conventions` (``CTF(0) = +w``: the opposite of cryoDRGN's). The
zeros are where ``π λ Δf k² - (π/2) Cs λ³ k⁴ + φ_a = nπ`` (tests/cryoforge/test_ctf.py).

Any ``defocus_u``, ``defocus_v`` work: rows with U < V are computed as (V, U, angle + 90°), the same
ellipse (torch-ctf takes the square root of ``(U - V) / 2``). The envelope ``scale · exp(-B k² / 4)`` is
capped at 1: a negative B (as real STAR files carry) would otherwise amplify the CTF without bound.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
from typing import TYPE_CHECKING

import numpy as np
import torch
from scipy import constants as C
from torch_ctf import calculate_ctf_2d
from torch_ctf.ctf_utils import calculate_total_phase_shift

from .fourier import freq_radius

if TYPE_CHECKING:
    from collections.abc import Sequence

    from .hints import Device


# a scalar, or one value per image (numpy array or torch tensor)
Values = float | np.ndarray | torch.Tensor


@dataclass
class CTFParams:
    """One CTF (scalars) or a batch (1-D arrays or tensors of equal length). RELION's names and units."""

    defocus_u: Values = 15000.0  # Å, underfocus positive (rlnDefocusU)
    defocus_v: Values = 15000.0  # Å (rlnDefocusV)
    defocus_angle: Values = 0.0  # degrees, direction of defocus_u from the x axis (rlnDefocusAngle)
    voltage: Values = 300.0  # kV (rlnVoltage)
    cs: Values = 2.7  # mm (rlnSphericalAberration)
    amplitude_contrast: Values = 0.1  # fraction (rlnAmplitudeContrast)
    bfactor: Values = 0.0  # Å² (rlnCtfBfactor), envelope exp(-B k^2 / 4), capped at 1
    phase_shift: Values = 0.0  # degrees (rlnPhaseShift)
    scale: Values = 1.0  # rlnCtfScalefactor, multiplies the envelope (capped at 1)

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


def canonical_astigmatism(du: torch.Tensor, dv: torch.Tensor,
                          angle: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(U, V, angle)`` with ``U ≥ V``: rows with U < V become ``(V, U, angle + 90°)``, the same CTF."""
    swap = du < dv
    return torch.where(swap, dv, du), torch.where(swap, du, dv), torch.where(swap, angle + 90.0, angle)


def _envelope_k2(shape, pixel_size, rfft: bool, fftshift: bool, device) -> torch.Tensor:
    """``|k|²`` (1/Å²) on the CTF's grid, ``(N, …)`` for one pixel size per row."""
    k = freq_radius(shape, 1.0, rfft=rfft, device=device)
    if fftshift:
        k = torch.fft.fftshift(k, dim=(-2,) if rfft else (-2, -1))
    px = _t(pixel_size, device)
    return (k / px.reshape(*px.shape, 1, 1)) ** 2


def ctf_2d(params: CTFParams, shape: Sequence[int], pixel_size: float | np.ndarray, rfft: bool = True,
           fftshift: bool = False, device: Device | None = None) -> torch.Tensor:
    """CTF on the 2-D FFT grid of ``shape = (Y, X)``: ``(Y, X//2+1)`` when ``rfft``; batched as ``(N, …)``.

    ``pixel_size`` is in Å: one number, or one per row of a batch (particles of several optics groups).
    With a batch of parameters (1-D arrays), the result is ``(N, *fft_shape)``.
    """
    if len(shape) != 2:
        raise ValueError(f"ctf_2d needs an image shape (Y, X); got {tuple(shape)}")
    du, dv, angle = canonical_astigmatism(_t(params.defocus_u, device), _t(params.defocus_v, device),
                                          _t(params.defocus_angle, device))
    px = float(pixel_size) if np.ndim(pixel_size) == 0 else _t(np.asarray(pixel_size, np.float32), device)
    ctf = calculate_ctf_2d(
        defocus=(du + dv) / 2 / 1e4,
        astigmatism=(du - dv) / 2 / 1e4,
        astigmatism_angle=angle,
        voltage=_t(params.voltage, device),
        spherical_aberration=_t(params.cs, device),
        amplitude_contrast=_t(params.amplitude_contrast, device),
        phase_shift=_t(params.phase_shift, device),
        pixel_size=px,
        image_shape=(int(shape[0]), int(shape[1])),
        rfft=rfft,
        fftshift=fftshift,
    )
    b, scale = _t(params.bfactor, ctf.device), _t(params.scale, ctf.device)
    if torch.any(b != 0) or torch.any(scale != 1):
        k2 = _envelope_k2(shape, pixel_size, rfft, fftshift, ctf.device)
        env = scale.reshape(*scale.shape, 1, 1) * torch.exp(-b.reshape(*b.shape, 1, 1) * k2 / 4)
        ctf = ctf * env.clamp(max=1.0)
    return ctf


def apply_ctf(images: torch.Tensor, params: CTFParams, pixel_size: float) -> torch.Tensor:
    """Multiply ``(…, Y, X)`` images by their CTF in Fourier space (phase flips and envelope included)."""
    imgs = torch.as_tensor(images)
    ctf = ctf_2d(params, imgs.shape[-2:], pixel_size, rfft=True, device=imgs.device).to(imgs.dtype)
    ft = torch.fft.rfftn(imgs, dim=(-2, -1)) * ctf
    return torch.fft.irfftn(ft, s=imgs.shape[-2:], dim=(-2, -1))


def ctf_of_k2(params: CTFParams, k2: torch.Tensor, device: Device | None = None) -> torch.Tensor:
    """Isotropic CTF (``defocus_u`` only, envelope included and capped at 1) at squared frequencies ``k2`` (1/Å²).

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
    return -torch.sin(phase) * (p(params.scale) * torch.exp(-p(params.bfactor) * k2 / 4)).clamp(max=1.0)
