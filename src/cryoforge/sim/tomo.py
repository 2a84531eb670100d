"""Cryo-ET image formation for subtomograms: tilt series, CTF, detector MTF, noise, reconstruction.

Geometry (:mod:`cryoforge.conventions`): the specimen tilts about the y axis; the image at tilt θ is
the projection along z of the specimen rotated by ``Ry(θ)``. Its Fourier transform is the central
slice through the specimen's transform spanned by the ``ky`` axis and the direction at angle θ from
``kx`` towards ``kz``. A single-axis series over ``[θ_min, θ_max]`` therefore samples the Fourier
points with ``atan(kz / kx) ∈ [θ_min, θ_max]``; the rest is the missing wedge
(:func:`wedge_mask`). The wedge *angle* quoted in the seeds is ``90° − θ_max`` for a symmetric series
(±60° → a 30° wedge; ±90° → no wedge).

Two reconstructions (``TomoParams.reconstruction``):

``"fourier"`` (default)
    Direct Fourier inversion in the limit where the slices cover the grid — true for 1° steps up to
    the Crowther box of ~115 voxels: every Fourier voxel inside the wedge gets the specimen's transform
    times its CTF and MTF (the CTF depends on the in-slice frequency, whose length equals ``|k|``), the
    wedge stays empty, and the reconstructed projection noise has power ``∝ MTF² |k_xz|`` (the density
    of slices falls as ``1/|k_xz|``, the distance from the tilt axis). One 3-D FFT per subtomogram.
``"wbp"``
    The explicit pipeline: every tilt projected (teamtomo's torch-fourier-slice), multiplied by its
    CTF and MTF, noise added per image, R-weighted (``|k_x|``) and back-projected in real space.
    Slower; the test suite checks the two agree.

Noise and SNR: Gaussian noise is added to the projections and passes through the MTF (detector
noise is blurred with the signal). ``snr`` is the *subtomogram* SNR of seed 001: ``SNR = c / (1 − c)``
for the Pearson correlation ``c`` of two aligned noisy copies, i.e. ``var(signal) / var(noise)`` of
the reconstructed subtomogram over the whole box; each subtomogram's noise is scaled to reach it.

CTF: ``CTF = −sin(χ)`` (torch-ctf's sign, :mod:`cryoforge.ctf`), so density stays positive at low
frequency (protein bright). Defocus is the same for every tilt of a subtomogram (no defocus gradient).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np
import torch
import torch.nn.functional as F

from ..conventions import rotation_about_axis
from ..ctf import CTFParams, ctf_2d, ctf_of_k2
from ..fourier import fourier_shift, freq_grid
from .params import TomoParams

if TYPE_CHECKING:
    from collections.abc import Sequence

    from ..hints import ArrayLike, Device, Tensorish



def check_tilt_range(tilt_min: float, tilt_max: float) -> None:
    """Tilt angles must lie in [-90, 90] with ``tilt_min ≤ tilt_max``; the error names the parameter."""
    for name, v in (("tilt_min", tilt_min), ("tilt_max", tilt_max)):
        if not -90 <= v <= 90:
            raise ValueError(f"{name} must lie in [-90, 90] degrees (|tilt| ≤ 90); got {v!r}")
    if tilt_min > tilt_max:
        raise ValueError(f"tilt_min ({tilt_min}) must not exceed tilt_max ({tilt_max})")


def tilt_range_from_wedge(wedge: float) -> tuple[float, float]:
    """Symmetric tilt range with a missing wedge of ``wedge`` degrees (0 → ±90, 30 → ±60)."""
    if not 0 <= wedge <= 90:
        raise ValueError(f"wedge angle must lie in [0, 90] degrees; got {wedge!r}")
    return -(90.0 - wedge), 90.0 - wedge


def tilt_angles(tilt_min: float, tilt_max: float, step: float) -> np.ndarray:
    """Tilt angles in degrees from ``tilt_min`` to ``tilt_max`` inclusive (±90 counted once)."""
    check_tilt_range(tilt_min, tilt_max)
    n = int(math.floor((tilt_max - tilt_min) / step + 1e-6)) + 1
    a = tilt_min + step * np.arange(n)
    if tilt_min == -90 and a[-1] >= 90 - 1e-6 and n > 1:
        a = a[:-1]  # -90° and +90° are the same projection
    return a


def _slice_angle(k: torch.Tensor) -> torch.Tensor:
    """Tilt (degrees, in (-90, 90]) of the slice through each frequency vector ``(x, y, z)``."""
    kx, kz = k[..., 0], k[..., 2]
    ang = torch.rad2deg(torch.atan2(kz, kx))
    ang = torch.where(ang > 90, ang - 180, ang)
    return torch.where(ang <= -90, ang + 180, ang)


def wedge_mask(shape: Sequence[int], tilt_min: float = -60.0, tilt_max: float = 60.0, rfft: bool = True,
               device: Device | None = None) -> torch.Tensor:
    """1 where a ``[tilt_min, tilt_max]`` single-axis (y) series samples Fourier space, 0 in the missing wedge.

    On the (r)FFT grid of ``shape = (Z, Y, X)`` (torch.fft order). The ``ky`` axis (``kx = kz = 0``) is
    on every slice and is always kept. ``fftshift`` the result to look at it centred.
    """
    check_tilt_range(tilt_min, tilt_max)
    k = freq_grid(shape, 1.0, rfft=rfft, device=device)
    ang = _slice_angle(k)
    on_axis = (k[..., 0] == 0) & (k[..., 2] == 0)
    eps = 1e-4
    inside = (ang >= tilt_min - eps) & (ang <= tilt_max + eps)
    if tilt_min <= -90 + eps:  # +90° is the same slice as -90°
        inside = inside | (ang >= 90 - eps)
    return (inside | on_axis).to(torch.float32)


def centred_wedge(n: int, tilt_min: float, tilt_max: float) -> torch.Tensor:
    """Centred full-grid Fourier sampling mask of a ``[tilt_min, tilt_max]`` series (the ``wedge_*.mrc`` layout)."""
    return torch.fft.fftshift(wedge_mask((n, n, n), tilt_min, tilt_max, rfft=False))


def detector_mtf(k_frac_nyquist: torch.Tensor) -> torch.Tensor:
    """``sinc(πω/2) = sin(πω/2) / (πω/2)`` with ω the frequency as a fraction of Nyquist (0.637 at ω = 1)."""
    return torch.sinc(k_frac_nyquist / 2)


def transfer_3d(shape: Sequence[int], voxel_size: float, ctf: CTFParams | None, tilt_min: float, tilt_max: float,
                mtf: bool = True,
                device: Device | None = None) -> torch.Tensor:
    """Signal transfer of a tilt series + reconstruction on the rFFT grid: CTF · MTF · wedge, ``(B, Z, Y, X//2+1)``."""
    k = freq_grid(shape, voxel_size, rfft=True, device=device)
    k2 = (k * k).sum(-1)
    t = ctf_of_k2(ctf, k2) if ctf is not None else torch.ones_like(k2)
    if mtf:
        t = t * detector_mtf(torch.sqrt(k2) * 2 * voxel_size)
    return t * wedge_mask(shape, tilt_min, tilt_max, rfft=True, device=device)


def noise_amplitude_3d(shape: Sequence[int], tilt_min: float, tilt_max: float, mtf: bool = True,
                       device: Device | None = None) -> torch.Tensor:
    """Amplitude filter for reconstructed projection noise: ``MTF · sqrt(|k_xz|) · wedge`` (rFFT grid)."""
    k = freq_grid(shape, 1.0, rfft=True, device=device)
    kxz = torch.sqrt(k[..., 0] ** 2 + k[..., 2] ** 2)
    amp = torch.sqrt(kxz)
    if mtf:
        amp = amp * detector_mtf(torch.linalg.norm(k, dim=-1) * 2)
    return amp * wedge_mask(shape, tilt_min, tilt_max, rfft=True, device=device)


def _scale_noise(clean: torch.Tensor, noise: torch.Tensor, snr: float | None) -> torch.Tensor:
    if snr is None:
        return clean
    dims = tuple(range(1, clean.ndim))
    vs, vn = clean.var(dim=dims, keepdim=True), noise.var(dim=dims, keepdim=True).clamp_min(1e-30)
    return clean + noise * torch.sqrt(vs / (snr * vn))


def _fourier_reconstruct(volumes, ctf, tilt_min, tilt_max, params, shifts, generator):
    shape = volumes.shape[-3:]
    ft = torch.fft.rfftn(torch.fft.ifftshift(volumes, dim=(-3, -2, -1)), dim=(-3, -2, -1))
    transfer = transfer_3d(shape, params.voxel_size, ctf, tilt_min, tilt_max, params.mtf, volumes.device)
    if params.ctf_correction == "phase_flip":
        transfer = transfer.abs()
    clean = torch.fft.irfftn(ft * transfer, s=shape, dim=(-3, -2, -1))
    clean = torch.fft.fftshift(clean, dim=(-3, -2, -1))
    if shifts is not None:
        clean = fourier_shift(clean, shifts)
    if params.snr is None:
        return clean
    white = torch.randn(volumes.shape, generator=generator, dtype=volumes.dtype, device=volumes.device)
    amp = noise_amplitude_3d(shape, tilt_min, tilt_max, params.mtf, volumes.device)
    noise = torch.fft.irfftn(torch.fft.rfftn(white, dim=(-3, -2, -1)) * amp, s=shape, dim=(-3, -2, -1))
    return _scale_noise(clean, noise, params.snr)


def project_tilt_series(volume: Tensorish, rotation: Tensorish, tilts_deg: ArrayLike) -> torch.Tensor:
    """Projections ``(T, n, n)`` of ``volume`` rotated by ``rotation`` then tilted about y by each angle."""
    from torch_fourier_slice import project_3d_to_2d

    rt = rotation_about_axis((0.0, 1.0, 0.0), torch.as_tensor(np.asarray(tilts_deg), dtype=torch.float32)).float()
    full = rt @ torch.as_tensor(rotation, dtype=torch.float32)
    # torch-fourier-slice samples V(M p): M = (Ry(θ) R)^T gives the projection of the rotated volume
    return project_3d_to_2d(volume, full.transpose(-1, -2))


def backproject_wbp(images: torch.Tensor, tilts_deg: Tensorish, chunk: int = 16) -> torch.Tensor:
    """R-weighted real-space back-projection of ``(C, T, n, n)`` tilt images → ``(C, n, n, n)`` volumes."""
    c, t, n, _ = images.shape
    kx = torch.fft.rfftfreq(n, device=images.device)
    filt = torch.fft.irfft(torch.fft.rfft(images, dim=-1) * kx.abs(), n=n, dim=-1)
    ctr = n // 2
    ax = torch.arange(n, dtype=images.dtype, device=images.device) - ctr
    z, y, x = torch.meshgrid(ax, ax, ax, indexing="ij")
    out = torch.zeros(c, n, n, n, dtype=images.dtype, device=images.device)
    tilts = torch.as_tensor(np.asarray(tilts_deg), dtype=images.dtype, device=images.device)
    rots = rotation_about_axis((0.0, 1.0, 0.0), tilts).to(images.dtype)
    for s in range(0, t, chunk):
        r = rots[s:s + chunk]
        u = r[:, 0, 0, None, None, None] * x + r[:, 0, 1, None, None, None] * y + r[:, 0, 2, None, None, None] * z
        v = y.expand_as(u)
        grid = torch.stack([2 * (u + ctr) / (n - 1) - 1, 2 * (v + ctr) / (n - 1) - 1], dim=-1)
        grid = grid.reshape(len(r), n * n, n, 2)
        img = filt[:, s:s + chunk].transpose(0, 1)  # (t, C, n, n)
        sampled = F.grid_sample(img, grid, mode="bilinear", padding_mode="zeros", align_corners=True)
        out += sampled.sum(0).reshape(c, n, n, n)
    return out * (math.pi / t)


def _wbp_reconstruct(volumes, rotations, ctf, tilt_min, tilt_max, params, shifts, generator):
    tilts = tilt_angles(tilt_min, tilt_max, params.tilt_step)
    n = volumes.shape[-1]
    out = []
    k = freq_grid((n, n), 1.0, rfft=True, device=volumes.device)
    mtf2 = detector_mtf(torch.linalg.norm(k, dim=-1) * 2) if params.mtf else torch.ones(k.shape[:-1])
    for i in range(volumes.shape[0]):
        proj = project_tilt_series(volumes[i], rotations[i], tilts)
        if ctf is None:
            ctf2 = torch.ones(k.shape[:-1], device=volumes.device)
        else:
            c = CTFParams(**{f: (v[i] if torch.is_tensor(v) and v.ndim else v) for f, v in ctf.as_dict().items()})
            ctf2 = ctf_2d(c, (n, n), params.voxel_size, rfft=True, device=volumes.device)
        if params.ctf_correction == "phase_flip":
            ctf2 = ctf2.abs()
        signal = torch.fft.irfft2(torch.fft.rfft2(proj) * ctf2 * mtf2, s=(n, n))
        chans = [signal]
        if params.snr is not None:
            white = torch.randn(proj.shape, generator=generator, dtype=proj.dtype, device=proj.device)
            chans.append(torch.fft.irfft2(torch.fft.rfft2(white) * mtf2, s=(n, n)))
        rec = backproject_wbp(torch.stack(chans), tilts)
        clean = rec[0] if shifts is None else fourier_shift(rec[0], shifts[i])
        out.append(clean if params.snr is None else _scale_noise(clean[None], rec[1][None], params.snr)[0])
    return torch.stack(out)


def simulate_subtomograms(volumes: Tensorish, rotations: Tensorish, shifts: Tensorish | None, defocus: Tensorish,
                          tilt_min: float, tilt_max: float,
                          params: TomoParams, generator: torch.Generator | None = None) -> torch.Tensor:
    """Noisy subtomograms ``(B, n, n, n)`` of ``volumes`` rotated by ``rotations`` then shifted by ``shifts``.

    volumes ``(B, n, n, n)`` (density, canonical pose); rotations ``(B, 3, 3)``; shifts ``(B, 3)`` voxels
    ``(x, y, z)`` or None; defocus ``(B,)`` Å underfocus; tilt range in degrees (:func:`tilt_range_from_wedge`).
    """
    from ..geometry import transform_volumes

    params.validate()
    check_tilt_range(tilt_min, tilt_max)
    vols = torch.as_tensor(volumes, dtype=torch.float32)
    rot = torch.as_tensor(rotations, dtype=torch.float32)
    sh = None if shifts is None else torch.as_tensor(shifts, dtype=torch.float32)
    ctf = params.ctf_params(defocus) if params.apply_ctf else None
    if params.reconstruction == "wbp":
        return _wbp_reconstruct(vols, rot, ctf, tilt_min, tilt_max, params, sh, generator)
    rotated = transform_volumes(vols, rotations=rot)
    return _fourier_reconstruct(rotated, ctf, tilt_min, tilt_max, params, sh, generator)
