"""SO(3) grids and rotation helpers shared by every search (subtomogram alignment, template scoring, pose search).

Rotations are 3×3 matrices acting on ``(x, y, z)`` column vectors (:mod:`cryoforge.conventions`). The global grid
is a super-Fibonacci spiral (Alexa 2022): deterministic, near-uniform, any size. Local grids perturb a rotation by
rotation vectors on a cubic lattice.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np
import torch

from .conventions import quaternion_to_matrix

if TYPE_CHECKING:
    from .hints import ArrayLike

_PSI = 1.533751168755204288118041  # super-Fibonacci constants (Alexa 2022)
_PHI = math.sqrt(2.0)


def so3_grid(n: int, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """``n`` rotations spread uniformly over SO(3) (super-Fibonacci spiral), ``(n, 3, 3)``; deterministic."""
    s = torch.arange(n, dtype=torch.float64) + 0.5
    t = s / n
    r, big_r = torch.sqrt(t), torch.sqrt(1 - t)
    alpha, beta = 2 * math.pi * s / _PHI, 2 * math.pi * s / _PSI
    q = torch.stack([r * torch.sin(alpha), r * torch.cos(alpha), big_r * torch.sin(beta), big_r * torch.cos(beta)], -1)
    return quaternion_to_matrix(q).to(dtype)


def grid_spacing_deg(n: int) -> float:
    """Typical angular spacing (degrees) of an ``n``-point SO(3) grid: ``(8π² / n)^(1/3) / √2`` radians — the cube
    root of the SO(3) volume (8π²) per point, over √2."""
    return math.degrees((8 * math.pi ** 2 / n) ** (1 / 3) / math.sqrt(2))


def axis_angle_matrix(v: torch.Tensor) -> torch.Tensor:
    """Rotation vectors ``(..., 3)`` (radians) → matrices (Rodrigues)."""
    theta = torch.linalg.norm(v, dim=-1, keepdim=True)
    half = theta / 2
    scale = torch.where(theta > 1e-12, torch.sin(half) / theta.clamp_min(1e-12), torch.full_like(theta, 0.5))
    return quaternion_to_matrix(torch.cat([torch.cos(half), v * scale], -1))


def six_d_matrix(x: torch.Tensor) -> torch.Tensor:
    """Continuous 6-D rotation representation (Zhou et al., CVPR 2019) ``(..., 6)`` → matrices: the two 3-vectors are
    made orthonormal by Gram–Schmidt and become the first two columns, their cross product the third. Unlike Euler
    angles or rotation vectors it has no discontinuity over SO(3), which suits regressing rotations."""
    a1, a2 = x[..., :3], x[..., 3:6]
    b1 = a1 / torch.linalg.norm(a1, dim=-1, keepdim=True).clamp_min(1e-8)
    a2 = a2 - (b1 * a2).sum(-1, keepdim=True) * b1
    b2 = a2 / torch.linalg.norm(a2, dim=-1, keepdim=True).clamp_min(1e-8)
    return torch.stack([b1, b2, torch.linalg.cross(b1, b2)], -1)


def local_grid(step_deg: float, radius: int = 1, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Perturbations on a cubic grid of rotation vectors ``{-r … r}³ · step``, ``((2r+1)³, 3, 3)``; the identity first."""
    k = torch.arange(-radius, radius + 1, dtype=torch.float64)
    v = torch.stack(torch.meshgrid(k, k, k, indexing="ij"), -1).reshape(-1, 3) * math.radians(step_deg)
    v = v[torch.argsort(torch.linalg.norm(v, dim=1), stable=True)]
    return axis_angle_matrix(v).to(dtype)


def nearest_rotation(matrices: ArrayLike) -> np.ndarray:
    """The rotations nearest (Frobenius) to ``matrices`` ``(..., 3, 3)``, in float64: float32 products drift from
    SO(3) by ~1e-4, enough to move Euler angles written to a file by hundredths of a degree."""
    m = np.asarray(matrices, np.float64)
    u, _, vt = np.linalg.svd(m)
    d = np.sign(np.linalg.det(u @ vt))
    u[..., :, -1] *= d[..., None]
    return u @ vt
