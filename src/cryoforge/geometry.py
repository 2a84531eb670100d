"""Batched rigid transforms of volumes and real-space grids (conventions: :mod:`cryoforge.conventions`)."""

from __future__ import annotations

from functools import lru_cache
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F

from .conventions import as_tensor, box_centre

if TYPE_CHECKING:
    from collections.abc import Sequence

    from .hints import Device, Tensorish



def centred_grid(shape: Sequence[int], device: Device | None = None,
                 dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Voxel coordinates relative to the box centre, ``(*shape, ndim)`` in ``(x, y[, z])`` order."""
    axes = [torch.arange(n, device=device, dtype=dtype) - box_centre(n) for n in shape]
    grids = torch.meshgrid(*axes, indexing="ij")  # (z, y, x) order
    return torch.stack(grids[::-1], dim=-1)


def radius_grid(shape: Sequence[int], device: Device | None = None, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Distance of each voxel from the box centre, in voxels."""
    return torch.linalg.norm(centred_grid(shape, device, dtype), dim=-1)


@lru_cache(maxsize=16)
def _unit_grid(shape: tuple[int, ...], dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """``(x, y, z, 1)`` of every voxel in grid_sample's normalised coordinates (``align_corners=True``),
    ``(Z·Y·X, 4)``."""
    axes = [torch.linspace(-1, 1, n, dtype=dtype, device=device) if n > 1 else torch.zeros(1, dtype=dtype, device=device)
            for n in shape]
    zz, yy, xx = torch.meshgrid(*axes, indexing="ij")
    return torch.stack([xx, yy, zz, torch.ones_like(xx)], -1).reshape(-1, 4)


def affine_grid(theta: torch.Tensor, shape: Sequence[int]) -> torch.Tensor:
    """``F.affine_grid(theta, (B, 1, *shape), align_corners=True)`` for ``(B, 3, 4)`` ``theta`` and a ``(Z, Y, X)``
    ``shape``: the same values (one matrix product with a cached grid of the box), without torch's per-call grid of
    ``B`` copies — 7× faster on the CPU (512 rotations of 16³: 25.5 → 3.6 ms; 64 of 32³: 21.1 → 2.9 ms; 2026-12-01,
    2 cores). Differentiable in ``theta``."""
    base = _unit_grid(tuple(int(n) for n in shape), theta.dtype, theta.device)
    return (base @ theta.transpose(-1, -2)).view(theta.shape[0], *shape, 3)


def _batched(volumes: torch.Tensor) -> tuple[torch.Tensor, bool]:
    if volumes.ndim == 3:
        return volumes[None], True
    if volumes.ndim == 4:
        return volumes, False
    raise ValueError(f"expected a (Z, Y, X) volume or a (B, Z, Y, X) batch, got shape {tuple(volumes.shape)}")


def transform_volumes(volumes: Tensorish, rotations: Tensorish | None = None, shifts: Tensorish | None = None,
                      mode: str = "bilinear", padding_mode: str = "zeros") -> torch.Tensor:
    """Rotate then shift volumes: ``V'(p) = V(R^T (p - t))``.

    volumes: ``(Z, Y, X)`` or ``(B, Z, Y, X)``; rotations: ``(3, 3)`` or ``(B, 3, 3)``;
    shifts: ``(3,)`` or ``(B, 3)`` in voxels, ``(x, y, z)``. Sub-voxel shifts are
    interpolated (trilinear, ``mode='bilinear'`` in grid_sample's naming). Rotation is
    about the box centre (index ``n // 2``).
    """
    vol = as_tensor(volumes)
    vol, squeeze = _batched(vol)
    b, shape = vol.shape[0], vol.shape[1:]
    dev, dt = vol.device, vol.dtype
    rot = torch.eye(3, dtype=dt, device=dev) if rotations is None else as_tensor(rotations, dt).to(dev)
    sh = torch.zeros(3, dtype=dt, device=dev) if shifts is None else as_tensor(shifts, dt).to(dev)
    rot = rot.expand(b, 3, 3)
    sh = sh.expand(b, 3)
    # source = Rᵀ (p − t) about the centre c (index n//2), as one affine map of align_corners=True normalised
    # coordinates u = (idx − a)/a, a = (n − 1)/2: u_src = Rᵀ u + (Rᵀ (d − t) − d)/a with d = a − c.
    a = torch.tensor([(n - 1) / 2 for n in shape[::-1]], dtype=dt, device=dev)
    d = a - torch.tensor([box_centre(n) for n in shape[::-1]], dtype=dt, device=dev)
    rt = rot.transpose(-1, -2)
    scale = a[:, None] / a[None, :]  # anisotropic boxes: u_src,i = Σ_j Rᵀ_ij a_j u_j / a_i
    lin = rt * scale.T[None] if len(set(shape)) > 1 else rt
    off = ((rt @ (d - sh)[..., None])[..., 0] - d) / a
    theta = torch.cat([lin, off[..., None]], -1)
    grid = affine_grid(theta, shape)
    out = F.grid_sample(vol[:, None], grid, mode=mode, padding_mode=padding_mode, align_corners=True)[:, 0]
    return out[0] if squeeze else out


def rotate_volume(volume: Tensorish, rotation: Tensorish, mode: str = "bilinear") -> torch.Tensor:
    """Rotate ``volume`` by ``rotation`` about the box centre (see :func:`transform_volumes`)."""
    return transform_volumes(volume, rotations=rotation, mode=mode)


def require_cubic(volume: Tensorish, what: str = "this operation") -> None:
    """Raise a clear ``ValueError`` unless ``volume`` is a cubic ``(n, n, n)`` array."""
    shape = tuple(volume.shape)
    if len(shape) != 3:
        raise ValueError(f"{what} needs a 3-D (Z, Y, X) volume; got an array of shape {shape}")
    if len(set(shape)) != 1:
        raise ValueError(f"{what} needs a cubic volume (n, n, n); got shape {shape} (Z, Y, X)")
