"""Atomic coordinates → sampled density maps, batched over conformations.

Two physics models, selected by ``method``:

``"peng"``
    Electron scattering potential from the five-Gaussian electron form factors of Peng et al.
    (1996), as tabulated in International Tables C 4.3.2.2 and provided by gemmi
    (``Element.c4322``): ``f_e(s) = Σ a_i exp(-b_i s²)`` with ``s = |k|/2``. Map values are the
    potential in the table's units (Å of scattering amplitude per Å³), proportional to the Coulomb
    potential; an optional global B-factor and target resolution blur it further.
``"gaussian"``
    Situs / ChimeraX ``molmap`` style: each atom a Gaussian weighted by its atomic number, with
    ``σ = resolution / (π √2)`` (its Fourier transform falls to 1/e at ``k = 1/resolution``).

How: atoms are spread onto a grid ``oversample`` times finer than the target (trilinear, then
divided by the trilinear kernel's ``sinc²`` transfer), one channel per element; each channel's
Fourier transform is multiplied by its element's form factor; the sum is band-limited to the target
grid's Nyquist frequency by Fourier cropping. The result is the band-limited density sampled at voxel
centres, so a 12 Å voxel map carries no aliasing from 1 Å-wide atoms.

The centre of mass goes to the box centre (index ``n // 2``, :mod:`cryoforge.conventions`); with a
batch of conformations, the centre of mass of their average, so the frames stay registered.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np
import torch

from .atoms import AtomicModel, ModelError

if TYPE_CHECKING:
    from ..hints import Device, Tensorish


METHODS = ("peng", "gaussian")
SIGMA_PER_RESOLUTION = 1.0 / (math.pi * math.sqrt(2.0))


def check_map_parameters(box: int, voxel_size: float, resolution: float | None = None, bfactor: float = 0.0) -> None:
    """Refuse a box, voxel size, resolution or B-factor a map cannot be made with; the message says why."""
    if not (isinstance(box, (int, np.integer)) and box >= 8):
        raise ValueError(f"box must be an integer of at least 8 voxels; got {box!r}")
    if not (voxel_size > 0 and math.isfinite(voxel_size)):
        raise ValueError(f"voxel_size must be a positive number of Å; got {voxel_size!r}")
    if resolution is not None and not resolution > 0:
        raise ValueError(f"resolution must be positive (Å) or None; got {resolution!r}")
    if bfactor < 0:
        raise ValueError(f"bfactor must be ≥ 0 Å²; got {bfactor!r}")


def _form_factors(elements: list[str], method: str):
    """Per-channel element list and, for each channel, (a, b) Gaussian coefficients in s = |k|/2."""
    import gemmi

    if method == "gaussian":
        return None
    table = {}
    for e in sorted(set(elements)):
        coef = gemmi.Element(e).c4322
        a, b = list(coef.a), list(coef.b)
        if not any(a):
            raise ModelError(f"no electron form factor tabulated for element {e!r}")
        table[e] = (a, b)
    return table


def _splat(q: torch.Tensor, weights: torch.Tensor, channel: torch.Tensor, n_channels: int, m: int) -> torch.Tensor:
    """Trilinear spreading of points ``q`` (B, N, 3) in fine-voxel ``(x, y, z)`` units into (B, C, m, m, m)."""
    b = q.shape[0]
    i0 = torch.floor(q)
    f = q - i0
    i0 = i0.long()
    out = torch.zeros(b * n_channels * m**3, dtype=q.dtype, device=q.device)
    base = (torch.arange(b, device=q.device)[:, None] * n_channels + channel[None]) * m**3  # (B, N)
    for dz in (0, 1):
        for dy in (0, 1):
            for dx in (0, 1):
                ix, iy, iz = i0[..., 0] + dx, i0[..., 1] + dy, i0[..., 2] + dz
                w = ((f[..., 0] if dx else 1 - f[..., 0]) * (f[..., 1] if dy else 1 - f[..., 1])
                     * (f[..., 2] if dz else 1 - f[..., 2])) * weights
                ok = (ix >= 0) & (ix < m) & (iy >= 0) & (iy < m) & (iz >= 0) & (iz < m)
                idx = base + (iz.clamp(0, m - 1) * m + iy.clamp(0, m - 1)) * m + ix.clamp(0, m - 1)
                out.index_add_(0, idx[ok], w[ok])
    return out.reshape(b, n_channels, m, m, m)


def _crop_spectrum(ft: torch.Tensor, n: int) -> torch.Tensor:
    """Keep the ``n``-grid frequencies of an rfftn spectrum ``(…, m, m, m//2+1)``."""
    m = ft.shape[-3]
    if m == n:
        return ft
    lo, hi = (n + 1) // 2, n // 2  # non-negative / negative frequencies kept on full axes
    def axis(x, dim):
        return torch.cat([x.narrow(dim, 0, lo), x.narrow(dim, m - hi, hi)], dim=dim)
    out = axis(axis(ft, -3), -2)
    return out[..., : n // 2 + 1]


def models_to_density(coords: Tensorish, elements: list[str], box: int, voxel_size: float, method: str = "peng",
                      resolution: float | None = None, bfactor: float = 0.0, oversample: int = 2,
                      occupancy: Tensorish | None = None, centre: Tensorish | None = None,
                      device: Device | None = None) -> torch.Tensor:
    """Density maps ``(B, n, n, n)`` (or ``(n, n, n)`` for one ``(N, 3)`` model) from coordinates in Å.

    coords: ``(N, 3)`` or ``(B, N, 3)`` sharing ``elements``; centre: ``(x, y, z)`` Å placed at the
    box centre (default: the mass-weighted centre of the batch average). Raises ``ValueError`` naming
    ``box`` when the model does not fit in the box.
    """
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}; got {method!r}")
    check_map_parameters(box, voxel_size, resolution, bfactor)
    if method == "gaussian" and resolution is None:
        raise ValueError("method 'gaussian' needs a resolution (Å)")
    if oversample < 1:
        raise ValueError(f"oversample must be ≥ 1; got {oversample!r}")
    from ..resources import check_allocation

    check_allocation((box * oversample) ** 3 * 4 * 4, f"a {box}³ map sampled {oversample}× finer",
                     "choose a smaller --box (or a coarser --voxel-size)")
    xyz = torch.as_tensor(np.asarray(coords, dtype=np.float32), device=device)
    single = xyz.ndim == 2
    xyz = xyz[None] if single else xyz
    if xyz.ndim != 3 or xyz.shape[-1] != 3 or xyz.shape[1] == 0:
        raise ModelError(f"coordinates must be (N, 3) or (B, N, 3) with N ≥ 1 atoms; got {tuple(xyz.shape)}")
    if len(elements) != xyz.shape[1]:
        raise ModelError(f"{len(elements)} elements for {xyz.shape[1]} atoms")
    import gemmi

    occ = torch.ones(xyz.shape[1]) if occupancy is None else torch.as_tensor(np.asarray(occupancy, np.float32))
    occ = occ.to(xyz.device)
    mass = torch.tensor([gemmi.Element(e).weight for e in elements], dtype=torch.float32, device=xyz.device) * occ
    mean_xyz = xyz.mean(0)
    ctr = ((mean_xyz * mass[:, None]).sum(0) / mass.sum()) if centre is None else \
        torch.as_tensor(np.asarray(centre, np.float32), device=xyz.device)
    extent = torch.linalg.norm(xyz - ctr, dim=-1).max().item()
    blur = max(voxel_size, 2 * SIGMA_PER_RESOLUTION * resolution if resolution else 0.0)
    half = (box // 2 - 1) * voxel_size
    if extent + blur > half:
        need = int(math.ceil(2 * (extent + blur) / voxel_size)) + 2
        raise ValueError(f"box {box} is too small: the model reaches {extent:.0f} Å from its centre "
                         f"(+{blur:.0f} Å blur) but the box holds {half:.0f} Å at voxel_size {voxel_size:g} Å; "
                         f"use box ≥ {need} (--box {need}) or a larger voxel_size (--voxel-size)")
    m = box * oversample
    fine = voxel_size / oversample
    q = (xyz - ctr) / fine + m // 2
    if method == "gaussian":
        z = torch.tensor([gemmi.Element(e).atomic_number for e in elements], dtype=torch.float32, device=xyz.device)
        channel_of = torch.zeros(xyz.shape[1], dtype=torch.long, device=xyz.device)
        grid = _splat(q, z * occ, channel_of, 1, m)
        names: list[str] = []  # one channel (atomic numbers); no form-factor table
    else:
        names = sorted(set(elements))
        index = {e: i for i, e in enumerate(names)}
        channel_of = torch.tensor([index[e] for e in elements], dtype=torch.long, device=xyz.device)
        grid = _splat(q, occ, channel_of, len(names), m)
    ft = torch.fft.rfftn(torch.fft.ifftshift(grid, dim=(-3, -2, -1)), dim=(-3, -2, -1))
    ft = _crop_spectrum(ft, box)
    # frequency in 1/Å on the target grid, and the fine-grid trilinear transfer to undo
    ax = torch.fft.fftfreq(box, d=voxel_size, device=xyz.device)
    axr = torch.fft.rfftfreq(box, d=voxel_size, device=xyz.device)
    kz, ky, kx = torch.meshgrid(ax, ax, axr, indexing="ij")
    k2 = kx**2 + ky**2 + kz**2
    tri = (torch.sinc(kx * fine) * torch.sinc(ky * fine) * torch.sinc(kz * fine)) ** 2
    env = torch.exp(-bfactor * k2 / 4) / tri
    if resolution:
        env = env * torch.exp(-2 * math.pi**2 * (SIGMA_PER_RESOLUTION * resolution) ** 2 * k2)
    if method == "peng":
        table = _form_factors(names, method)
        s2 = k2 / 4
        ff = torch.stack([sum(a * torch.exp(-b * s2) for a, b in zip(*table[e], strict=True)) for e in names])
        total = (ft * ff).sum(1)
    else:
        total = ft[:, 0]
    total = total * env
    out = torch.fft.fftshift(torch.fft.irfftn(total, s=(box,) * 3, dim=(-3, -2, -1)), dim=(-3, -2, -1))
    out = out * (box / m) ** 3 / fine**3  # per Å³, undoing the smaller inverse-FFT normalisation
    return out[0] if single else out


def model_to_density(model: AtomicModel, box: int, voxel_size: float, method: str = "peng",
                     resolution: float | None = None, bfactor: float = 0.0, oversample: int = 2,
                     device: Device | None = None) -> torch.Tensor:
    """Density ``(n, n, n)`` of one :class:`AtomicModel` (see :func:`models_to_density`)."""
    return models_to_density(model.coords, model.elements, box, voxel_size, method, resolution, bfactor,
                             oversample, model.occupancy, device=device)
