"""Pose search by branch and bound over SO(3) × R² with frequency marching, as cryoDRGN's BNB.

Round 0 scores every image against the slices of a uniform SO(3) grid (super-Fibonacci, shared with the classical
aligner) at every shift of a grid, at a low band limit; each later round keeps the ``keep`` best poses per image,
subdivides them (a 3×3×3 grid of rotation vectors at half the previous spacing, and a 3×3 grid of shifts at half the
previous shift step, the pose itself included) and scores them at a higher band limit, marching from ``k_start``
to ``k_end`` pixels. The score is the squared error between the image's Hartley values and the CTF-weighted slice
``CTF(k)·H(k @ R)``. The model is a slice model: :class:`HartleySlices` interpolates Hartley lattices, one shared
(an explicit volume, :meth:`HartleySlices.from_volume`, or a homogeneous decoder) or one per image (a heterogeneous
decoder at each image's latent, :meth:`HartleySlices.from_decoder`, decoded only inside the band limit).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np
import torch
import torch.nn.functional as F

from ..so3 import axis_angle_matrix, grid_spacing_deg, so3_grid
from .data import symmetrize, translate_ht
from .model import htn_center

if TYPE_CHECKING:
    from typing import Any

    from ..hints import Tensorish
    from .model import CoordinateDecoder



class HartleySlices:
    """Hartley lattices ``(V, m, m, m)`` (V = 1: shared by all images; V = B: one per image) covering coordinates
    ``[-extent, extent]`` per axis, interpolated trilinearly; 0 beyond them. Called with coordinates ``(G, P, 3)``
    it returns ``(V, G, P)``; with per-image coordinates ``(B, C, P, 3)`` it returns ``(B, C, P)``."""

    def __init__(self, h: torch.Tensor, extent: float) -> None:
        self.h, self.extent = h[:, None].float(), float(extent)  # (V, 1, m, m, m)

    @classmethod
    def from_volume(cls, volume: Tensorish) -> HartleySlices:
        """An explicit volume ``(D, D, D)`` (the centred Hartley lattice, Nyquist wrapped on every axis)."""
        v = torch.as_tensor(np.asarray(volume, np.float32))
        h = symmetrize(htn_center(v))  # (D, D+1, D+1) → wrap z too
        return cls(torch.cat([h, h[:1]], 0)[None], 0.5)

    @classmethod
    @torch.no_grad()
    def from_decoder(cls, decoder: CoordinateDecoder, z: torch.Tensor | None, D: int,
                     radius_px: float) -> HartleySlices:
        """The decoder's Hartley values (normalised units) for latents ``z`` ``(B, zdim)`` (or one volume for a
        homogeneous decoder), on the lattice points within ``radius_px`` + 1 Fourier pixels of the centre."""
        n = min(int(math.ceil(radius_px)) + 1, D // 2)
        dev = next(decoder.parameters()).device
        ax = torch.arange(-n, n + 1, device=dev, dtype=torch.float32) / D
        zz, yy, xx = torch.meshgrid(ax, ax, ax, indexing="ij")
        k = torch.stack([xx, yy, zz], -1).reshape(-1, 3)
        inside = k.norm(dim=1) <= (n + 0.5) / D
        b = 1 if z is None else len(z)
        h = torch.zeros(b, len(k), device=dev)
        h[:, inside] = decoder.hartley(k[inside], z)
        return cls(h.view(b, 2 * n + 1, 2 * n + 1, 2 * n + 1), n / D)

    def __call__(self, k: torch.Tensor) -> torch.Tensor:
        v = self.h.shape[0]
        g = (k / self.extent).to(self.h)  # order (x, y, z) → grid_sample's (W, H, D)
        if k.ndim == 3:  # shared coordinates (G, P, 3)
            out = F.grid_sample(self.h, g.reshape(1, -1, 1, 1, 3).expand(v, -1, -1, -1, -1), align_corners=True)
            return out.reshape(v, *k.shape[:2])
        out = F.grid_sample(self.h.expand(len(k), -1, -1, -1, -1), g.reshape(len(k), -1, 1, 1, 3), align_corners=True)
        return out.reshape(k.shape[:3])


def _errors(y: torch.Tensor, c: torch.Tensor | None, sl: torch.Tensor) -> torch.Tensor:
    """``Σ_p (y − c·s)²`` for images ``y`` ``(B, [K,] T, P)`` and slices ``sl`` ``(B or 1, [K,] G, P)``: ``(B, [K,] T, G)``."""
    cy = y if c is None else y * c
    cc = None if c is None else c * c
    yy = y.pow(2).sum(-1, keepdim=True)
    cross = cy @ sl.transpose(-1, -2)
    ss = sl.pow(2).sum(-1)[..., None, :] if cc is None else (cc @ sl.pow(2).transpose(-1, -2))
    return yy - 2 * cross + ss


@torch.no_grad()
def pose_search(model: Any, images_ht: torch.Tensor, coords: torch.Tensor, D: int, n_global: int = 4608, keep: int = 8,
                rounds: int = 5, k_start: float = 12, k_end: float | None = None, shifts: Tensorish | None = None,
                ctf: Any = None,
                refine_shifts: bool = True, chunk: int = 256) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Best rotations ``(B, 3, 3)``, shifts ``(B, 2)`` (pixels: the shift that re-centres each image) and errors
    ``(B,)`` for Hartley images ``(B, P)`` on lattice points ``coords`` ``(P, 3)`` (a point-symmetric set, see
    :func:`~.data.translate_ht`); ``ctf`` ``(B, P)`` weights the model's slices; ``shifts`` is the round-0 grid
    ``(S, 2)``, refined by halving its step each later round when ``refine_shifts``."""
    k_end = D / 2 if k_end is None else k_end
    dev = images_ht.device
    r = coords[:, :2].norm(dim=1) * D  # radius in Fourier pixels
    shifts = torch.zeros(1, 2) if shifts is None else torch.as_tensor(np.asarray(shifts, np.float32)).reshape(-1, 2)
    shifts = shifts.to(dev)
    b = len(images_ht)

    def band(rnd):
        return (r <= k_start + (k_end - k_start) * rnd / max(rounds - 1, 1)) & (r > 0)

    # round 0: the global grid for every shift of the grid
    m = band(0)
    grid = so3_grid(n_global).to(dev)
    y = torch.stack([translate_ht(images_ht, t.expand(b, 2), coords)[:, m] for t in shifts], 1)  # (B, S, P)
    c = None if ctf is None else ctf[:, m][:, None]  # (B, 1, P)
    errs = torch.cat([_errors(y, c, model(coords[m] @ grid[s:s + chunk]))
                      for s in range(0, n_global, chunk)], -1)  # (B, S, G)
    best = errs.flatten(1).topk(min(keep, errs[0].numel()), largest=False)
    rots, t = grid[best.indices % n_global], shifts[best.indices // n_global]  # (B, K, 3, 3), (B, K, 2)
    err = best.values
    step = grid_spacing_deg(n_global)
    t_step = _grid_step(shifts)
    u = torch.arange(-1, 2, dtype=torch.float64)
    local_v = torch.stack(torch.meshgrid(u, u, u, indexing="ij"), -1).reshape(-1, 3)  # (27, 3)
    local_t = torch.stack(torch.meshgrid(u, u, indexing="ij"), -1).reshape(-1, 2).float().to(dev)  # (9, 2)
    for rnd in range(1, rounds):
        step /= 2
        t_step /= 2
        m = band(rnd)
        kk = rots.shape[1]
        cand = rots[:, :, None] @ axis_angle_matrix(local_v * math.radians(step)).float().to(dev)  # (B, K, 27, 3, 3)
        tc = t[:, :, None] + (local_t * t_step if refine_shifts and t_step > 0 else local_t[4:5] * 0)  # (B, K, T, 2)
        nt = tc.shape[2]
        yt = translate_ht(images_ht.repeat_interleave(kk * nt, 0), tc.reshape(-1, 2), coords)[:, m]
        yt = yt.view(b, kk, nt, -1)  # (B, K, T, P)
        sl = model(coords[m] @ cand.reshape(b, kk * 27, 3, 3)).view(b, kk, 27, -1)  # (B, K, 27, P)
        e = _errors(yt, None if ctf is None else ctf[:, m][:, None, None], sl).flatten(1)  # (B, K·T·27)
        top = e.topk(min(keep, e.shape[1]), largest=False)
        ki, ti, ri = top.indices // (nt * 27), (top.indices // 27) % nt, top.indices % 27
        rots = cand[torch.arange(b)[:, None], ki, ri]
        t = tc[torch.arange(b)[:, None], ki, ti]
        err = top.values
    return rots[:, 0], t[:, 0], err[:, 0]


def _grid_step(shifts: torch.Tensor) -> float:
    """The spacing of a shift grid (0 for a single shift)."""
    d = (shifts[:, None] - shifts[None]).abs().flatten(0, 1).flatten()
    d = d[d > 1e-6]
    return float(d.min()) if len(d) else 0.0
