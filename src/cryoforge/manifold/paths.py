"""Latent paths: straight lines, great circles (slerp) and shortest paths through the data's k-NN graph."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from ..latent import ManifoldError

if TYPE_CHECKING:
    from ..hints import Tensorish


PATH_METHODS = ("linear", "spherical", "graph")


def _check(waypoints, frames: int) -> np.ndarray:
    w = np.asarray(waypoints, dtype=np.float64)
    if w.ndim != 2:
        raise ManifoldError(f"waypoints must be an array (points, latent_dim), got shape {w.shape}")
    if len(w) < 2:
        raise ManifoldError(f"a path needs at least two points (a start and an end), got {len(w)}")
    if int(frames) <= 0:
        raise ManifoldError(f"the number of frames must be positive, got {frames}")
    if int(frames) < len(w):
        raise ManifoldError(f"{frames} frames cannot pass through {len(w)} waypoints; ask for at least {len(w)}")
    return w


def _resample(points: np.ndarray, frames: int, interp) -> np.ndarray:
    """``frames`` points along the polyline ``points`` at equal arc length (``interp(a, b, t)`` between two)."""
    seg = np.linalg.norm(np.diff(points, axis=0), axis=1)
    if seg.sum() == 0:
        return np.repeat(points[:1], frames, 0)
    cum = np.concatenate([[0], np.cumsum(seg)])
    out = []
    for s in np.linspace(0, cum[-1], frames):
        i = min(int(np.searchsorted(cum, s, side="right")) - 1, len(seg) - 1)
        t = 0.0 if seg[i] == 0 else (s - cum[i]) / seg[i]
        out.append(interp(points[i], points[i + 1], t))
    return np.asarray(out)


def _lerp(a, b, t):
    return (1 - t) * a + t * b


def _slerp(a, b, t):
    """Great-circle interpolation, the norm interpolated linearly (the usual choice for Gaussian latents)."""
    na, nb = np.linalg.norm(a), np.linalg.norm(b)
    if na < 1e-12 or nb < 1e-12:
        return _lerp(a, b, t)
    ua, ub = a / na, b / nb
    omega = np.arccos(np.clip(ua @ ub, -1, 1))
    if omega < 1e-6:
        return _lerp(a, b, t)
    u = (np.sin((1 - t) * omega) * ua + np.sin(t * omega) * ub) / np.sin(omega)
    return u * ((1 - t) * na + t * nb)


def graph_indices(data: Tensorish, start: int, end: int, k: int = 10) -> list[int]:
    """Indices of the data points on the shortest path from ``start`` to ``end`` in the symmetric k-NN graph
    (edge length = Euclidean distance), as ``cryodrgn graph_traversal`` does; a clear error when disconnected."""
    from scipy.sparse.csgraph import dijkstra
    from sklearn.neighbors import kneighbors_graph

    x = np.asarray(data, dtype=np.float64)
    g = kneighbors_graph(x, n_neighbors=min(k, len(x) - 1), mode="distance")
    g = g.maximum(g.T)
    dist, pred = dijkstra(g, directed=False, indices=start, return_predecessors=True)
    if not np.isfinite(dist[end]):
        raise ManifoldError(f"data points {start} and {end} are not connected in the {k}-NN graph; raise k")
    path = [end]
    while path[-1] != start:
        path.append(int(pred[path[-1]]))
    return path[::-1]


def nearest_data_index(data: Tensorish, point: Tensorish) -> int:
    """Index of the data latent point nearest to ``point`` (Euclidean)."""
    return int(np.argmin(np.linalg.norm(np.asarray(data) - np.asarray(point)[None], axis=1)))


def make_path(waypoints: Tensorish, frames: int, method: str = "linear", data: Tensorish | None = None,
              k: int = 10) -> np.ndarray:
    """``(frames, latent_dim)`` latent points through ``waypoints`` (first and last included).

    ``linear`` and ``spherical`` interpolate between consecutive waypoints at equal arc length; ``graph``
    snaps each waypoint to its nearest data point and follows the shortest k-NN-graph path through the data.
    """
    w = _check(waypoints, frames)
    if method not in PATH_METHODS:
        raise ManifoldError(f"unknown path method {method!r}; choose one of {', '.join(PATH_METHODS)}")
    if method == "graph":
        if data is None or len(data) < 3:
            raise ManifoldError("a graph path needs the data latents of the model (at least 3 points)")
        data = np.asarray(data, dtype=np.float64)
        snapped = [nearest_data_index(data, p) for p in w]
        idx = [snapped[0]]
        for a, b in zip(snapped[:-1], snapped[1:], strict=True):
            idx += graph_indices(data, a, b, k)[1:]
        pts = data[idx]
        if len(pts) == 1:
            pts = np.repeat(pts, 2, 0)
        return _resample(pts, int(frames), _lerp).astype(np.float32)
    return _resample(w, int(frames), _slerp if method == "spherical" else _lerp).astype(np.float32)


def parse_point(text: str, latent_dim: int) -> np.ndarray:
    """A latent point from the command line: comma/space separated numbers, or one number for every coordinate."""
    try:
        vals = [float(v) for v in text.replace(",", " ").split()]
    except ValueError:
        raise ManifoldError(f"cannot read a latent point from {text!r}: give numbers separated by commas") from None
    if len(vals) == 1:
        vals *= latent_dim
    if len(vals) != latent_dim:
        raise ManifoldError(f"the point {text!r} has {len(vals)} coordinates; this model's latent space has {latent_dim}")
    return np.asarray(vals, np.float32)
