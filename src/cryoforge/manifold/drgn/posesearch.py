"""Pose search by branch and bound over SO(3) (× a grid of shifts) with frequency marching, as cryoDRGN's BNB.

Round 0 scores every image against the slices of a uniform SO(3) grid (super-Fibonacci, shared with the classical
aligner) at a low band limit; each later round keeps the ``keep`` best poses per image, subdivides them (a 3×3×3
grid of rotation vectors at half the previous spacing, the pose itself included) and scores them at a higher band
limit, marching from ``k_start`` to ``k_end`` pixels. The score is the squared error between the image's Hartley
values and the model's slice ``H(k @ R)``; the model is any function of lattice coordinates (a decoder, or an
explicit volume through :class:`VolumeSlices`).
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

from ...align.classical import axis_angle_matrix, grid_spacing_deg, so3_grid
from .data import symmetrize, translate_ht
from .model import htn_center


class VolumeSlices:
    """An explicit volume ``(D, D, D)`` as a slice model: trilinear interpolation of its centred Hartley lattice."""

    def __init__(self, volume):
        v = torch.as_tensor(np.asarray(volume, np.float32))
        h = symmetrize(htn_center(v))  # (D, D+1, D+1) → pad z too
        self.h = torch.cat([h, h[:1]], 0)[None, None]  # (1, 1, D+1, D+1, D+1)

    def __call__(self, k: torch.Tensor) -> torch.Tensor:
        shape = k.shape[:-1]
        g = (k.reshape(1, -1, 1, 1, 3) / 0.5).to(self.h)  # [-0.5, 0.5] → [-1, 1], order (x, y, z)
        return F.grid_sample(self.h, g, align_corners=True).reshape(shape)


def _score(model, y, coords, rots, chunk: int = 256) -> torch.Tensor:
    """Squared errors ``(B, G)`` of images ``y`` ``(B, P)`` against the slices of shared rotations ``(G, 3, 3)``."""
    out = []
    for s in range(0, len(rots), chunk):
        sl = model(coords @ rots[s:s + chunk])  # (g, P)
        out.append((y.pow(2).sum(1, keepdim=True) - 2 * y @ sl.T + sl.pow(2).sum(1)[None]))
    return torch.cat(out, 1)


@torch.no_grad()
def pose_search(model, images_ht: torch.Tensor, coords: torch.Tensor, D: int, n_global: int = 4608, keep: int = 8,
                rounds: int = 5, k_start: float = 12, k_end: float | None = None, shifts=None):
    """Best rotations ``(B, 3, 3)``, shifts ``(B, 2)`` (pixels) and errors ``(B,)`` for Hartley images ``(B, P)`` on
    lattice points ``coords`` ``(P, 3)`` (a point-symmetric set, see :func:`~.data.translate_ht`)."""
    k_end = D / 2 if k_end is None else k_end
    r = coords[:, :2].norm(dim=1) * D  # radius in Fourier pixels
    shifts = torch.zeros(1, 2) if shifts is None else torch.as_tensor(np.asarray(shifts, np.float32)).reshape(-1, 2)
    b = len(images_ht)

    def band(rnd):
        return k_start + (k_end - k_start) * rnd / max(rounds - 1, 1)

    # round 0: the global grid for every shift
    m = (r <= band(0)) & (r > 0)
    grid = so3_grid(n_global)
    errs = torch.stack([_score(model, translate_ht(images_ht, t.expand(b, 2), coords)[:, m], coords[m], grid)
                        for t in shifts], 1)  # (B, S, G)
    best = errs.flatten(1).topk(min(keep, errs[0].numel()), largest=False).indices
    rots = grid[best % n_global]  # (B, keep, 3, 3)
    sidx = best // n_global
    step = grid_spacing_deg(n_global)
    for rnd in range(1, rounds):
        step /= 2
        m = (r <= band(rnd)) & (r > 0)
        k = torch.arange(-1, 2, dtype=torch.float64)
        v = torch.stack(torch.meshgrid(k, k, k, indexing="ij"), -1).reshape(-1, 3) * math.radians(step)
        local = axis_angle_matrix(v).float()  # (27, 3, 3)
        cand = (rots[:, :, None] @ local[None, None]).reshape(b, -1, 3, 3)  # (B, keep·27, 3, 3)
        cs = sidx.repeat_interleave(len(local), 1)
        y = torch.stack([translate_ht(images_ht, t.expand(b, 2), coords)[:, m] for t in shifts], 1)  # (B, S, P)
        y_c = torch.gather(y, 1, cs[..., None].expand(-1, -1, y.shape[-1]))  # (B, C, P)
        sl = model((coords[m] @ cand.reshape(-1, 3, 3)).reshape(b, cand.shape[1], -1, 3))
        e = (sl - y_c).pow(2).sum(-1)
        top = e.topk(min(keep, e.shape[1]), largest=False).indices
        rots = torch.gather(cand, 1, top[..., None, None].expand(-1, -1, 3, 3))
        sidx = torch.gather(cs, 1, top)
        errs = torch.gather(e, 1, top)
    return rots[:, 0], shifts[sidx[:, 0]], (errs[:, 0] if errs.ndim == 2 else errs.flatten(1).min(1).values)
