"""The wedge-constrained correlation and the FFT peak finder (every search of the project uses these two).

The score of a pose is the constrained correlation of Förster et al. / Xu et al.: the Pearson correlation of two
volumes computed in Fourier space over the region both sampled — the target's Fourier mask times the rotated mask
of the moving volume, times an optional band — with the zero frequency removed. For every rotation the
correlation over *all* translations comes from one inverse FFT (:class:`Scorer`); :func:`fft_peak` reads the best
translation with sub-voxel precision.

Convention (:mod:`cryoforge.conventions`): a shift ``t`` found for rotation ``R`` satisfies
``target ≈ T(R, t) moving``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from .fourier import band_mask, half_weights, to_rfft_layout
from .geometry import transform_volumes


def fft_peak(cc: torch.Tensor, max_shift: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Best value and sub-voxel ``(x, y, z)`` shift of correlation maps ``(..., n, n, n)`` within ``max_shift``.

    The maps are in FFT order (zero shift at index 0); the shift is the integer peak plus a parabolic sub-voxel
    offset per axis (at most ½ voxel)."""
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


def constrained_correlation(moving_ft: torch.Tensor, target_ft: torch.Tensor, weight: torch.Tensor,
                            max_shift: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Best constrained correlation and its shift ``(x, y, z)`` over all translations within ``max_shift``.

    ``moving_ft``, ``target_ft``: rfft half grids ``(..., n, n, n//2+1)`` (broadcastable); ``weight``: the region
    both sampled, in rfft layout (masks × band, zero frequency 0). The correlation is normalised by both volumes'
    power inside ``weight``, so a perfect match scores 1 whatever the masks.
    """
    n = weight.shape[-3]
    wh = weight * half_weights(n, weight.device)  # the rfft half grid counts the other half once more
    na = ((moving_ft.real ** 2 + moving_ft.imag ** 2) * wh).sum((-3, -2, -1))
    nb = ((target_ft.real ** 2 + target_ft.imag ** 2) * wh).sum((-3, -2, -1))
    denom = torch.sqrt(na * nb).clamp_min(1e-20)
    cc = torch.fft.irfftn(target_ft * moving_ft.conj() * weight, s=(n,) * 3, dim=(-3, -2, -1))
    return fft_peak(cc * n ** 3 / denom[..., None, None, None], max_shift)


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
        self.max_shift = n / 2 - 1 if self.max_shift is None else float(self.max_shift)

    def score(self, moving: torch.Tensor, moving_mask: torch.Tensor | None,
              rotations: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
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
        """Rfft of ``moving`` ``(pm, …)`` at rotations ``(pm, g, 3, 3)`` and its rotated mask (rfft layout) or None."""
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
        return constrained_correlation(fa, self.ft[rows][:, None], w, self.max_shift)
