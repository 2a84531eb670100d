"""FSC-based comparison of conformation manifolds (the Multi-CryoGAN paper's metrics).

- :func:`fsc_area`: area under FSC(a, b) from 0 to Nyquist on normalised frequency (Nyquist = 1), so a map with
  itself scores 1 and unrelated maps ≈ 0.
- :func:`fsccc_matrix`: the FSC cross-conformation matrix ``M[m, n] = fsc_area(x_m, x_n)`` of an ordered set of
  volumes (the paper's ``x_m = G((1 − m/L) z₀ + (m/L) z₁)``, ``L = 20``).
- :func:`matrix_agreement`: Pearson correlation between a reconstructed and a true matrix (off-diagonal entries);
  the direction of a manifold is arbitrary, so the reversed order is tried too. Correlation ignores scale: a
  manifold collapsed to nearly one volume (every entry ≈ 0.99) can still correlate 0.97 with the truth, so the
  mean absolute difference and the two ends' similarity (``M[0, L]``, reconstructed and true) come with it.
- :func:`ends_fsc`: FSC per shell between the two ends of a path, the generator's and the truth's: the manifold's
  range at each frequency. A compressed manifold (ends more alike than the true states) shows as a generator curve
  above the truth's at low frequencies, where the images constrain the generator; the FSC area alone also counts the
  high-frequency texture every volume of a generator shares.
- :func:`discrete_proportions`: the fractions of the latent segment that decode to the first state, to the last,
  and to neither (the transition), read from the similarity of every point to the two ends.
- :func:`align_to_reference`: a generated volume in the frame (and hand) of a reference, for FSC against truth: a
  GAN reconstructs up to a rotation and a mirror, since projections at uniform poses cannot tell them apart.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import torch

from ..metrics import fsc

if TYPE_CHECKING:
    from ..hints import ArrayLike, Tensorish



def fsc_area(a: Tensorish, b: Tensorish) -> float:
    """Area under ``FSC(a, b)`` on normalised frequency ``[0, 1]`` (1 = Nyquist), trapezoidal over shells."""
    c = fsc(a, b).fsc
    f = np.arange(len(c)) / (len(c) - 1)
    return float(np.sum((c[1:] + c[:-1]) / 2 * np.diff(f)))


def fsccc_matrix(volumes: Tensorish) -> np.ndarray:
    """``M[m, n] = fsc_area(volumes[m], volumes[n])`` for ``(K, n, n, n)`` volumes; symmetric, ones on the diagonal."""
    v = torch.as_tensor(np.asarray(volumes, np.float32))
    k = len(v)
    m = np.eye(k)
    for i in range(k):
        for j in range(i + 1, k):
            m[i, j] = m[j, i] = fsc_area(v[i], v[j])
    return m


def matrix_agreement(reconstructed: Tensorish, truth: Tensorish) -> dict:
    """Pearson correlation of the off-diagonal entries of two FSCCC matrices of the same size (best of the two
    directions of the reconstructed manifold)."""
    a, b = np.asarray(reconstructed, float), np.asarray(truth, float)
    if a.shape != b.shape or a.ndim != 2 or a.shape[0] != a.shape[1]:
        raise ValueError(f"FSCCC matrices must be square and of the same size; got {a.shape} and {b.shape}")
    off = ~np.eye(len(a), dtype=bool)
    forward = float(np.corrcoef(a[off], b[off])[0, 1])
    backward = float(np.corrcoef(a[::-1, ::-1][off], b[off])[0, 1])
    best = a[::-1, ::-1] if backward > forward else a
    return {"pearson": max(forward, backward), "reversed": backward > forward, "pearson_forward": forward,
            "pearson_reversed": backward, "mean_abs_difference": float(np.abs(best[off] - b[off]).mean()),
            "ends_similarity": float(a[0, -1]), "ends_similarity_truth": float(b[0, -1])}


def ends_fsc(path: np.ndarray, truth: np.ndarray | None = None) -> dict:
    """``FSC(path[0], path[-1])`` per shell (cycles/px, Nyquist 0.5), and the same for ``truth`` when given."""
    curve = fsc(path[0], path[-1])
    out = {"frequency_cycles_per_px": curve.frequency.tolist(), "generator": curve.fsc.tolist()}
    if truth is not None:
        out["truth"] = fsc(truth[0], truth[-1]).fsc.tolist()
    return out


def discrete_proportions(to_first: ArrayLike, to_last: ArrayLike, tol: float = 0.2) -> dict:
    """Fractions of a uniformly sampled latent segment decoding to the first state, the last, and neither.

    ``to_first[j]`` / ``to_last[j]``: similarity (e.g. :func:`fsc_area`) of point ``j`` of the segment to its
    first / last point. Each is rescaled so that the end itself is 1 and the other end 0; a point belongs to a
    state when its rescaled similarity to that end is at least ``1 − tol``, else to the transition.
    """
    a, b = np.asarray(to_first, float), np.asarray(to_last, float)
    if a.shape != b.shape or a.ndim != 1 or len(a) < 3:
        raise ValueError("to_first and to_last must be two equal-length 1-D rows of at least 3 points")
    sa = (a - a[-1]) / max(a[0] - a[-1], 1e-12)
    sb = (b - b[0]) / max(b[-1] - b[0], 1e-12)
    first, last = sa >= 1 - tol, sb >= 1 - tol
    both = first & last  # ends too alike to tell apart: count as transition
    first, last = first & ~both, last & ~both
    w = np.full(len(a), 1.0)
    w[[0, -1]] = 0.5  # trapezoid weights: a grid point stands for the segment around it
    w /= w.sum()
    p_first, p_last = float(w[first].sum()), float(w[last].sum())
    return {"first": p_first, "last": p_last, "transition": 1.0 - p_first - p_last, "tol": tol}


def align_to_reference(volume: Tensorish, reference: Tensorish, device: str = "cpu") -> tuple[torch.Tensor, dict]:
    """``volume`` rotated, shifted and, if that fits better, mirrored onto ``reference`` (classical global search
    of :mod:`cryoforge.search`); returns the placed volume and ``{"mirrored", "score"}``."""
    from ..geometry import transform_volumes
    from ..search import SearchConfig, classical_align

    v = torch.as_tensor(np.asarray(volume, np.float32))
    ref = torch.as_tensor(np.asarray(reference, np.float32))
    cands = torch.stack([v, v.flip(-1)])
    r, t, s = classical_align(cands, ref[None].expand(2, *ref.shape), cfg=SearchConfig(), device=device)
    best = int(s.argmax())
    placed = transform_volumes(cands[best], r[best].cpu(), t[best].cpu())
    return placed, {"mirrored": bool(best == 1), "score": float(s[best])}
