"""Exhaustive rotation search over the wedge-constrained correlation (the classical aligner).

The role of H-T align / F&A align in the Gum-Net paper: rotations from a uniform SO(3) grid (:mod:`cryoforge.so3`)
at half size, the best ``candidates`` kept, then local grids of shrinking step around them at full size
(coarse-to-fine); every rotation is scored over all translations at once (:class:`cryoforge.correlation.Scorer`),
sub-voxel shift by parabolic peak interpolation. Everything is batched over pairs and rotations in torch.
Subtomogram alignment, averaging and Multi-CryoGAN's volume alignment all call :func:`classical_align`.

Convention (:mod:`cryoforge.conventions`): the result ``(R, t)`` satisfies ``target ≈ T(R, t) moving``.
For a pair dataset, ``moving = s_a`` and ``target = s_b``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import torch

from .correlation import Scorer
from .fourier import crop_mask, downsample
from .so3 import local_grid, so3_grid

if TYPE_CHECKING:
    from collections.abc import Sequence

    from .hints import Tensorish



@dataclass
class SearchConfig:
    """Coarse-to-fine search: a global grid at ``coarse_size``, then local levels ``(step°, radius, full_size)``."""

    global_rotations: int = 4000  # at SNR 0.03: 1000 rotations / 4 candidates: mean error 22.8°; these: 10.2°
    coarse_size: int = 16
    candidates: int = 8
    # 3° level at full size: on 10 noise-free pairs (60° wedge) mean error 1.19° → 0.75° at the same cost
    levels: tuple = ((8.0, 2, False), (3.0, 1, True), (1.2, 1, True), (0.5, 1, True))
    lowpass: float = 1.0
    max_shift: float | None = None
    chunk: int = 512


# local refinement from an estimate (the hybrid): every level at full size — at 16³ the assembly phantoms'
# landscape is too flat near the optimum (noise-free, 12° off: 8.2° / 5.9° left at 16³, 0.3° / 0.7° at full size)
HYBRID_LEVELS = ((8.0, 2, True), (3.0, 1, True), (1.2, 1, True), (0.5, 1, True))


def _refine(scorers, rots, levels, cfg):
    """Local levels around ``rots`` ``(P, C, 3, 3)`` candidates; returns best ``(R, t, score)`` per row."""
    p, c = rots.shape[:2]
    score = shifts = None
    for step, radius, full in levels:
        sc, mv, mm = scorers[full]
        pert = local_grid(step, radius, rots.dtype).to(rots.device)  # (L, 3, 3)
        cand = (pert[None, None] @ rots[:, :, None]).reshape(p, -1, 3, 3)  # rotate the candidates by each perturbation
        s, t = sc.score(mv, mm, cand)
        best = s.reshape(p, c, -1).max(-1)
        pick = best.indices  # (p, c)
        rots = cand.reshape(p, c, -1, 3, 3)[torch.arange(p)[:, None], torch.arange(c)[None], pick]
        score = best.values
        shifts = t.reshape(p, c, -1, 3)[torch.arange(p)[:, None], torch.arange(c)[None], pick]
        if full and c > 1:  # at full size keep only the best candidate
            top = score.argmax(1)
            rots, score, shifts = (x[torch.arange(p), top][:, None] for x in (rots, score, shifts))
            c = 1
    scale = 1.0
    if not levels[-1][2]:
        scale = scorers[True][1].shape[-1] / cfg.coarse_size
    return rots[:, 0], shifts[:, 0] * scale, score[:, 0]


def _scorers(moving, moving_mask, target, target_mask, cfg):
    n, m = target.shape[-1], cfg.coarse_size
    full = (Scorer(target, target_mask, cfg.lowpass, cfg.max_shift, cfg.chunk), moving, moving_mask)
    ms = None if cfg.max_shift is None else cfg.max_shift * m / n
    coarse = (Scorer(downsample(target, m), None if target_mask is None else crop_mask(target_mask, m), cfg.lowpass,
                     ms, cfg.chunk), downsample(moving, m), None if moving_mask is None else crop_mask(moving_mask, m))
    return {True: full, False: coarse}


def _prepare(moving, target, moving_mask, target_mask):
    mv = torch.as_tensor(np.asarray(moving) if not isinstance(moving, torch.Tensor) else moving, dtype=torch.float32)
    tg = torch.as_tensor(np.asarray(target) if not isinstance(target, torch.Tensor) else target, dtype=torch.float32)
    mv, tg = (x[None] if x.ndim == 3 else x for x in (mv, tg))
    if mv.shape[1:] != tg.shape[1:]:
        raise ValueError(f"the subtomograms must have the same size; got {tuple(mv.shape[1:])} and "
                         f"{tuple(tg.shape[1:])}")
    if mv.ndim != 4 or len(set(mv.shape[1:])) != 1:
        raise ValueError(f"alignment needs cubic volumes (n, n, n); got shape {tuple(mv.shape[1:])}")
    if mv.shape[0] not in (1, tg.shape[0]):
        raise ValueError(f"{mv.shape[0]} moving volumes for {tg.shape[0]} targets")
    masks = []
    for mk in (moving_mask, target_mask):
        if mk is not None:
            mk = torch.as_tensor(np.asarray(mk) if not isinstance(mk, torch.Tensor) else mk, dtype=torch.float32)
            mk = mk[None] if mk.ndim == 3 else mk
            if mk.shape[1:] != mv.shape[1:]:
                raise ValueError(f"Fourier mask of shape {tuple(mk.shape[1:])} for volumes {tuple(mv.shape[1:])}")
        masks.append(mk)
    return mv, tg, masks[0], masks[1]


def classical_align(moving: Tensorish, target: Tensorish, moving_mask: Tensorish | None = None,
                    target_mask: Tensorish | None = None, cfg: SearchConfig | None = None,
                    initial: Tensorish | None = None, device: str = "cpu",
                    levels: Sequence[tuple[float, int, bool]] | None = None) -> tuple[torch.Tensor,
                    torch.Tensor, torch.Tensor]:
    """Align ``moving`` onto ``target`` (``target ≈ T(R, t) moving``); returns ``(R (P,3,3), t (P,3), score (P,))``.

    ``moving`` ``(P|1, n, n, n)``, ``target`` ``(P, n, n, n)``; masks are centred Fourier masks (None:
    fully sampled). Without ``initial`` the search is global; with ``initial`` rotations ``(P, 3, 3)``
    (e.g. from Gum-Net: the hybrid) it refines locally with ``levels`` (default :data:`HYBRID_LEVELS`).
    A single moving volume (a reference) is rotated once per global grid rotation for all targets.
    """
    cfg = cfg or SearchConfig()
    dev = torch.device(device)
    mv, tg, mm, tm = _prepare(moving, target, moving_mask, target_mask)
    mv, tg = mv.to(dev), tg.to(dev)
    mm, tm = (None if x is None else x.to(dev) for x in (mm, tm))
    scorers = _scorers(mv, mm, tg, tm, cfg)
    if initial is not None:
        rots = torch.as_tensor(np.asarray(initial) if not isinstance(initial, torch.Tensor) else initial,
                               dtype=torch.float32).to(dev).reshape(-1, 1, 3, 3)
        return _refine(_expanded(scorers, len(tg)), rots, levels or HYBRID_LEVELS, cfg)
    sc, cmv, cmm = scorers[False]
    grid = so3_grid(cfg.global_rotations).to(dev)
    if cmv.shape[0] == 1:
        s, _ = sc.score(cmv, cmm, grid[None])
    else:
        s, _ = sc.score(cmv, cmm, grid[None].expand(cmv.shape[0], -1, -1, -1))
    top = s.topk(min(cfg.candidates, grid.shape[0]), dim=1).indices
    return _refine(_expanded(scorers, len(tg)), grid[top], levels or cfg.levels, cfg)


def _expanded(scorers, p):
    """Scorers whose moving volume (and mask) has one row per target (local grids differ per target)."""
    out = {}
    for key, (sc, mv, mm) in scorers.items():
        mv = mv.expand(p, *mv.shape[1:]) if mv.shape[0] == 1 else mv
        out[key] = (sc, mv, mm)
    return out




def nearest_self_match(volume: Tensorish, rotations: Tensorish, size: int = 24) -> tuple[torch.Tensor, torch.Tensor]:
    """For each rotation ``S`` ``(P, 3, 3)``, the nearest rotation ``S*`` under which the (clean, centred) map comes
    back onto itself best — local grids of 5°, 2°, 1° around ``S``, scored at ``size``³ — and that correlation
    ``corr(T(S*) V, V)``: ``(S* (P, 3, 3), corr (P,))``. A correlation near 1 means ``S*`` is a symmetry of the map
    (or a near-symmetry at its sampling)."""
    from .geometry import transform_volumes

    v = torch.as_tensor(np.asarray(volume, np.float32))
    if v.ndim != 3 or len(set(v.shape)) != 1:
        raise ValueError(f"a self-match needs one cubic map (n, n, n); got shape {tuple(v.shape)}")
    small = downsample(v[None], min(size, v.shape[-1]))[0]
    ref = small.flatten() - small.mean()

    def corr(rots: torch.Tensor) -> torch.Tensor:
        out = []
        for r in rots.split(128):
            a = transform_volumes(small.expand(len(r), *small.shape), r).flatten(1)
            a = a - a.mean(1, keepdim=True)
            out.append((a @ ref) / (a.norm(dim=1) * ref.norm() + 1e-12))
        return torch.cat(out)

    cand = torch.as_tensor(np.asarray(rotations, np.float32)).reshape(-1, 3, 3)
    best = corr(cand)
    for step in (5.0, 2.0, 1.0):
        trial = (local_grid(step, 1)[None] @ cand[:, None]).reshape(-1, 3, 3)
        scores = corr(trial).reshape(len(cand), -1)
        pick = scores.argmax(1)
        cand = trial.reshape(len(cand), -1, 3, 3)[torch.arange(len(cand)), pick]
        best = scores[torch.arange(len(cand)), pick]
    return cand, best
