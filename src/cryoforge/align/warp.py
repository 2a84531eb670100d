"""Differentiable rigid warps, Fourier-mask rotation and missing-wedge imputation (Gum-Net's STN).

Pose convention (:mod:`cryoforge.conventions`, :func:`cryoforge.geometry.transform_volumes`): a pair is
related by ``s_b = T(R, t) s_a`` with ``T(R, t) V (p) = V(Rᵀ (p − t))``. Aligning ``s_b`` onto ``s_a``
applies the inverse, ``ŝ_b(p) = s_b(R p + t)`` (:func:`warp_inverse`). Fourier masks are centred
(``fftshift``-ed) full-grid volumes such as ``wedge_b.mrc`` of a pair dataset; rotating a volume by
``R`` rotates its transform by ``R``, so the mask of ``ŝ_b`` is ``M_b(R k)``.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from ..conventions import euler_zyz_to_matrix
from ..fourier import centred_fft, centred_ifft
from ..geometry import affine_grid
from ..so3 import axis_angle_matrix, six_d_matrix


def sample_at(volumes: torch.Tensor, src: torch.Tensor) -> torch.Tensor:
    """Trilinear samples of ``volumes`` ``(B, n, n, n)`` at centred voxel positions ``src`` ``(B, M, 3)`` (x, y, z); zeros outside."""
    b, n = volumes.shape[0], volumes.shape[-1]
    norm = 2 * (src + n // 2) / (n - 1) - 1  # align_corners=True
    out = F.grid_sample(volumes[:, None], norm.reshape(b, 1, 1, -1, 3), mode="bilinear", padding_mode="zeros",
                        align_corners=True)
    return out.reshape(b, -1)


def warp_inverse(volumes: torch.Tensor, rotations: torch.Tensor, shifts: torch.Tensor | None = None) -> torch.Tensor:
    """``ŝ(p) = s(R p + t)``: undo ``T(R, t)`` on ``(B, n, n, n)`` volumes (differentiable in R and t).

    The map is affine in grid_sample's normalised coordinates ``u`` (``align_corners``): with ``a = (n-1)/2`` and
    the centre ``c = n//2`` a centred position is ``p = a u + (a - c)·1``, so the source point, normalised, is
    ``R u + (R (a - c)·1 + t + c·1) / a - 1`` — one affine grid (:func:`cryoforge.geometry.affine_grid`) instead of
    a matrix product and a normalisation over every voxel (1.5–1.75× faster on 2 CPU cores; the same samples to float
    rounding as :func:`sample_at`)."""
    b, n = volumes.shape[0], volumes.shape[-1]
    a, c = (n - 1) / 2, n // 2
    rot = rotations.expand(b, 3, 3) if rotations.shape[0] == 1 else rotations
    off = rot.sum(-1) * (a - c) + c
    if shifts is not None:
        off = off + shifts
    theta = torch.cat([rot, (off / a - 1)[..., None]], -1).to(volumes.dtype)
    grid = affine_grid(theta, (n, n, n))
    return F.grid_sample(volumes[:, None], grid, mode="bilinear", padding_mode="zeros", align_corners=True)[:, 0]


def rotate_fourier_masks(masks: torch.Tensor, rotations: torch.Tensor) -> torch.Tensor:
    """Masks of ``warp_inverse``-ed volumes: ``M(R k)`` for centred masks ``(B, n, n, n)`` (no shift: |F| ignores it)."""
    return warp_inverse(masks, rotations, None)


def impute_wedge(s_a: torch.Tensor, warped_b: torch.Tensor, warped_mask_b: torch.Tensor) -> torch.Tensor:
    """``ŝ_b`` with its unsampled Fourier region filled from ``s_a``: ``F⁻¹(F ŝ_b · M + F s_a · (1 − M))``."""
    m = warped_mask_b.clamp(0, 1)
    return centred_ifft(centred_fft(warped_b) * m + centred_fft(s_a) * (1 - m))


ROTATION_PARAMS = ("axis_angle", "zyz", "6d")


def n_params(rotation: str) -> int:
    """How many numbers the network outputs for a pose: 3 for the rotation (6 for ``6d``) and 3 for the shift."""
    return 9 if rotation == "6d" else 6


def params_to_pose(p: torch.Tensor, box: int, rotation: str = "zyz") -> tuple[torch.Tensor, torch.Tensor]:
    """Gum-Net's sigmoid outputs ``(B, 6)`` in [0, 1] → rotations ``(B, 3, 3)`` and shifts ``(B, 3)`` voxels.

    ``zyz`` as in the reference code: angles ``p·2π − π`` (RELION ZYZ rot, tilt, psi). Its output 0.5
    is the identity *at the gimbal lock* (tilt 0), where a small rotation about x or y needs large,
    opposite changes of rot and psi. ``axis_angle``: the rotation vector ``(2p − 1)·π`` — the identity
    at 0.5 too, but smooth around it (every small rotation is a small change). ``6d`` (``(B, 9)``): the first six
    numbers are unbounded, the continuous representation of :func:`cryoforge.so3.six_d_matrix` (identity at
    ``(1, 0, 0, 0, 1, 0)``), the last three sigmoid shifts. Shifts ``(2p − 1)·box/2``.
    """
    if rotation not in ROTATION_PARAMS:
        raise ValueError(f"rotation must be one of {ROTATION_PARAMS}; got {rotation!r}")
    if rotation == "6d":
        return six_d_matrix(p[:, :6]), (p[:, 6:9] * 2 - 1) * (box / 2)
    if rotation == "zyz":
        angles = torch.rad2deg(p[:, :3] * 2 * math.pi - math.pi)
        rot = euler_zyz_to_matrix(angles[:, 0], angles[:, 1], angles[:, 2])
    else:
        rot = axis_angle_matrix((p[:, :3] * 2 - 1) * math.pi)
    shifts = (p[:, 3:] * 2 - 1) * (box / 2)
    return rot, shifts


def pearson(a: torch.Tensor, b: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """Pearson correlation per sample over the last three axes, ``(B,)``."""
    a = a.flatten(1) - a.flatten(1).mean(1, keepdim=True)
    b = b.flatten(1) - b.flatten(1).mean(1, keepdim=True)
    return (a * b).sum(1) / torch.sqrt((a * a).sum(1) * (b * b).sum(1) + eps)


def masked_pearson(a: torch.Tensor, b: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Pearson correlation per sample of ``a`` and ``b`` ``(B, n, n, n)`` restricted to the Fourier region ``mask``
    (centred, clamped to [0, 1]) samples: how alike two subtomograms are where both were measured, ``(B,)``."""
    m = mask.clamp(0, 1)
    return pearson(centred_ifft(centred_fft(a) * m), centred_ifft(centred_fft(b) * m))
