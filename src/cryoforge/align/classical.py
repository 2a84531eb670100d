"""Classical subtomogram alignment: wedge-constrained correlation, global SO(3) search, FFT translations.

The role of H-T align / F&A align in the Gum-Net paper. The score of a pose is the constrained
correlation of Förster et al. / Xu et al.: the Pearson correlation of the two subtomograms computed in
Fourier space over the region both sampled — the target's Fourier mask times the rotated mask of the
moving volume, times an optional band — with the zero frequency removed. For every rotation the
correlation over *all* translations comes from one inverse FFT, so a search is: rotations from a
uniform SO(3) grid (super-Fibonacci spirals, Alexa 2022) at half size, the best ``candidates`` kept,
then local grids of shrinking step around them at full size (coarse-to-fine), sub-voxel shift by
parabolic peak interpolation. Everything is batched over pairs and rotations in torch.

Convention (:mod:`cryoforge.align.warp`): the result ``(R, t)`` satisfies ``target ≈ T(R, t) moving``.
For a pair dataset, ``moving = s_a`` and ``target = s_b``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import torch

from ..conventions import quaternion_to_matrix
from ..geometry import transform_volumes
from .warp import centred_fft, centred_ifft

_PSI = 1.533751168755204288118041  # super-Fibonacci constants (Alexa 2022)
_PHI = math.sqrt(2.0)


def so3_grid(n: int, dtype=torch.float32) -> torch.Tensor:
    """``n`` rotations spread uniformly over SO(3) (super-Fibonacci spiral), ``(n, 3, 3)``; deterministic."""
    s = torch.arange(n, dtype=torch.float64) + 0.5
    t = s / n
    r, big_r = torch.sqrt(t), torch.sqrt(1 - t)
    alpha, beta = 2 * math.pi * s / _PHI, 2 * math.pi * s / _PSI
    q = torch.stack([r * torch.sin(alpha), r * torch.cos(alpha), big_r * torch.sin(beta), big_r * torch.cos(beta)], -1)
    return quaternion_to_matrix(q).to(dtype)


def grid_spacing_deg(n: int) -> float:
    """Typical angular spacing of an ``n``-point SO(3) grid: ``(8π² / n)^(1/3)`` (the SO(3) volume over n)."""
    return math.degrees((8 * math.pi ** 2 / n) ** (1 / 3) / math.sqrt(2))


def axis_angle_matrix(v: torch.Tensor) -> torch.Tensor:
    """Rotation vectors ``(..., 3)`` (radians) → matrices (Rodrigues)."""
    theta = torch.linalg.norm(v, dim=-1, keepdim=True)
    half = theta / 2
    scale = torch.where(theta > 1e-12, torch.sin(half) / theta.clamp_min(1e-12), torch.full_like(theta, 0.5))
    return quaternion_to_matrix(torch.cat([torch.cos(half), v * scale], -1))


def local_grid(step_deg: float, radius: int = 1, dtype=torch.float32) -> torch.Tensor:
    """Perturbations on a cubic grid of rotation vectors ``{-r … r}³ · step``, ``((2r+1)³, 3, 3)``; the identity first."""
    k = torch.arange(-radius, radius + 1, dtype=torch.float64)
    v = torch.stack(torch.meshgrid(k, k, k, indexing="ij"), -1).reshape(-1, 3) * math.radians(step_deg)
    v = v[torch.argsort(torch.linalg.norm(v, dim=1), stable=True)]
    return axis_angle_matrix(v).to(dtype)


def to_rfft_layout(centred_mask: torch.Tensor) -> torch.Tensor:
    """A centred full-grid Fourier mask → the unshifted rfft half grid."""
    n = centred_mask.shape[-1]
    return torch.fft.ifftshift(centred_mask, dim=(-3, -2, -1))[..., : n // 2 + 1]


def _half_weights(n: int, device) -> torch.Tensor:
    w = torch.full((n // 2 + 1,), 2.0, device=device)
    w[0] = 1.0
    if n % 2 == 0:
        w[-1] = 1.0
    return w


def band_mask(n: int, lowpass: float = 1.0, device=None) -> torch.Tensor:
    """rfft-layout band: 0 at the zero frequency and beyond ``lowpass`` × Nyquist, else 1."""
    from ..fourier import freq_radius

    r = freq_radius((n, n, n), rfft=True, device=device) * 2  # fraction of Nyquist
    m = (r <= lowpass + 1e-6).float()
    m[0, 0, 0] = 0.0
    return m


def downsample(vols: torch.Tensor, m: int) -> torch.Tensor:
    """Fourier-crop ``(..., n, n, n)`` volumes to ``m³`` (a low-pass resampling; the centre stays at index n//2 → m//2)."""
    n = vols.shape[-1]
    if m == n:
        return vols
    c = n // 2 - m // 2
    ft = centred_fft(vols)[..., c:c + m, c:c + m, c:c + m]
    return centred_ifft(ft) * (m / n) ** 3


def upsample(vols: torch.Tensor, m: int) -> torch.Tensor:
    """Fourier-pad ``(..., n, n, n)`` volumes to ``m³`` (sinc interpolation; the centre n//2 goes to m//2)."""
    n = vols.shape[-1]
    if m == n:
        return vols
    c = m // 2 - n // 2
    ft = torch.zeros(*vols.shape[:-3], m, m, m, dtype=torch.complex64, device=vols.device)
    ft[..., c:c + n, c:c + n, c:c + n] = centred_fft(vols)
    return centred_ifft(ft) * (m / n) ** 3


def crop_mask(centred_mask: torch.Tensor, m: int) -> torch.Tensor:
    """The central ``m³`` of a centred Fourier mask (the mask of :func:`downsample`-d volumes)."""
    n = centred_mask.shape[-1]
    c = n // 2 - m // 2
    return centred_mask[..., c:c + m, c:c + m, c:c + m]


def _peak(cc: torch.Tensor, max_shift: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Best value and sub-voxel ``(x, y, z)`` shift of correlation maps ``(..., n, n, n)`` within ``max_shift``."""
    n = cc.shape[-1]
    f = torch.fft.fftfreq(n, 1.0 / n, device=cc.device)
    r2 = f[:, None, None] ** 2 + f[None, :, None] ** 2 + f[None, None, :] ** 2
    cc = cc.masked_fill(r2 > max_shift ** 2, -torch.inf)
    flat = cc.flatten(-3)
    best, idx = flat.max(-1)
    iz, iy, ix = idx // (n * n), (idx // n) % n, idx % n
    sub = []
    for axis, i in ((-1, ix), (-2, iy), (-3, iz)):
        def at(d, axis=axis):
            j = [iz, iy, ix]
            j[3 + axis] = (j[3 + axis] + d) % n
            return flat.gather(-1, (j[0] * n * n + j[1] * n + j[2])[..., None])[..., 0]
        lo, hi = at(-1), at(1)
        den = lo - 2 * best + hi
        off = torch.where(torch.isfinite(den) & (den < 0), 0.5 * (lo - hi) / den, torch.zeros_like(best))
        off = off.clamp(-0.5, 0.5)
        sub.append(f[i] + off)
    return best, torch.stack(sub, -1)


@dataclass
class Scorer:
    """Targets (their rfft and masks) against which moving volumes at given rotations are scored."""

    target: torch.Tensor  # (P, n, n, n)
    target_mask: torch.Tensor | None = None  # centred (P|1, n, n, n) or None (fully sampled)
    lowpass: float = 1.0
    max_shift: float | None = None
    chunk: int = 512
    ft: torch.Tensor = field(init=False)
    weight: torch.Tensor = field(init=False)

    def __post_init__(self):
        n = self.target.shape[-1]
        self.n = n
        dev = self.target.device
        self.ft = torch.fft.rfftn(self.target, dim=(-3, -2, -1))
        w = band_mask(n, self.lowpass, dev)
        if self.target_mask is not None:
            w = w * to_rfft_layout(self.target_mask)
        self.weight = w if w.ndim == 4 else w[None]  # (P|1, n, n, h)
        self.hw = _half_weights(n, dev)
        self.max_shift = n / 2 - 1 if self.max_shift is None else float(self.max_shift)

    def score(self, moving: torch.Tensor, moving_mask: torch.Tensor | None, rotations: torch.Tensor):
        """Scores ``(P, G)`` and shifts ``(P, G, 3)`` of ``moving`` rotated by ``rotations``, against every target.

        ``moving`` ``(P, n, n, n)`` with rotations ``(P, G, 3, 3)`` (one row per target), or ``(1, n, n, n)``
        with ``(1, G, 3, 3)``: one volume at shared rotations scored against all targets (rotated once).
        """
        p_t, g = len(self.target), rotations.shape[1]
        scores = torch.empty(p_t, g, device=moving.device)
        shifts = torch.empty(p_t, g, 3, device=moving.device)
        if moving.shape[0] == 1 and rotations.shape[0] == 1:
            g_chunk = min(g, self.chunk)
            for g0 in range(0, g, g_chunk):
                cols = slice(g0, min(g0 + g_chunk, g))
                fa, wm = self._rotated(moving, moving_mask, rotations[:, cols])
                rows_per = max(1, self.chunk // (cols.stop - cols.start))
                for r0 in range(0, p_t, rows_per):
                    rows = torch.arange(r0, min(r0 + rows_per, p_t))
                    scores[rows, cols], shifts[rows, cols] = self._correlate(fa, wm, rows)
            return scores, shifts
        rows_per = max(1, self.chunk // g)
        for r0 in range(0, p_t, rows_per):
            rows = torch.arange(r0, min(r0 + rows_per, p_t))
            mm = None if moving_mask is None else moving_mask[rows if moving_mask.shape[0] > 1 else [0] * len(rows)]
            fa, wm = self._rotated(moving[rows], mm, rotations[rows])
            scores[rows], shifts[rows] = self._correlate(fa, wm, rows)
        return scores, shifts

    def _rotated(self, moving, moving_mask, rot):
        """rfft of ``moving`` ``(pm, …)`` at rotations ``(pm, g, 3, 3)`` and its rotated mask (rfft layout) or None."""
        pm, g = rot.shape[0], rot.shape[1]
        flat = rot.reshape(-1, 3, 3)
        vols = moving.repeat_interleave(g, 0) if pm > 1 else moving.expand(g, *moving.shape[1:])
        fa = torch.fft.rfftn(transform_volumes(vols, flat), dim=(-3, -2, -1)).reshape(pm, g, *self.ft.shape[1:])
        wm = None
        if moving_mask is not None:
            mm = moving_mask.repeat_interleave(g, 0) if pm > 1 else moving_mask.expand(g, *moving_mask.shape[1:])
            wm = to_rfft_layout(transform_volumes(mm, flat)).reshape(pm, g, *self.ft.shape[1:])
        return fa, wm

    def _correlate(self, fa, wm, rows):
        """Best correlation and shift of rotated spectra ``fa`` ``(pm, g, …)`` against the targets ``rows``."""
        w = self.weight[rows if self.weight.shape[0] > 1 else torch.zeros_like(rows)][:, None]  # (pt, 1, …)
        if wm is not None:
            w = w * wm
        fb = self.ft[rows][:, None]
        na = ((fa.real ** 2 + fa.imag ** 2) * w * self.hw).sum((-3, -2, -1))
        nb = ((fb.real ** 2 + fb.imag ** 2) * w * self.hw).sum((-3, -2, -1))
        denom = torch.sqrt(na * nb).clamp_min(1e-20)  # (pt, g)
        cc = torch.fft.irfftn(fb * fa.conj() * w, s=(self.n,) * 3, dim=(-3, -2, -1))
        return _peak(cc * (self.n ** 3) / denom[..., None, None, None], self.max_shift)


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


def classical_align(moving, target, moving_mask=None, target_mask=None, cfg: SearchConfig | None = None,
                    initial=None, device: str = "cpu", levels=None):
    """Align ``moving`` onto ``target`` (``target ≈ T(R, t) moving``); returns ``(R (P,3,3), t (P,3), score (P,))``.

    ``moving`` ``(P|1, n, n, n)``, ``target`` ``(P, n, n, n)``; masks are centred Fourier masks (None:
    fully sampled). Without ``initial`` the search is global; with ``initial`` rotations ``(P, 3, 3)``
    (e.g. from Gum-Net: the hybrid) it refines locally with ``levels`` (default :data:`HYBRID_LEVELS`).
    A single moving volume (a reference) is rotated once per global grid rotation for all targets.
    """
    cfg = cfg or SearchConfig()
    dev = torch.device(device)
    mv, tg, mm, tm = (None if x is None else x.to(dev) for x in _prepare(moving, target, moving_mask, target_mask))
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
