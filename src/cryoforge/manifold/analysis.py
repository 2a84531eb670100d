"""Latent-space analysis as ``cryodrgn analyze`` does it: PCA, k-means
centres snapped to data points, traversals along principal components, and the nearest known structure."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from ..latent import ManifoldError

if TYPE_CHECKING:
    from collections.abc import Sequence

    from sklearn.decomposition import PCA

    from ..hints import ArrayLike, Tensorish



def pca(latents: ArrayLike, n_components: int = 2) -> tuple[np.ndarray, PCA]:
    """``(coordinates (N, n), fitted sklearn PCA)``; a 1-D latent space is returned as is with a zero second axis."""
    from sklearn.decomposition import PCA

    x = np.asarray(latents, np.float64)
    if len(x) < 2:
        raise ManifoldError("PCA needs at least two latent points")
    n = min(n_components, x.shape[1], len(x))
    fit = PCA(n_components=n).fit(x)
    coords = fit.transform(x)
    if coords.shape[1] < n_components:
        coords = np.pad(coords, ((0, 0), (0, n_components - coords.shape[1])))
    return coords.astype(np.float32), fit


def kmeans_centres(latents: Tensorish, k: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``(indices of the data points nearest the k-means centres, labels (N,))``, as cryoDRGN's ``analyze``."""
    from sklearn.cluster import KMeans

    x = np.asarray(latents, np.float64)
    if not 1 <= k <= len(x):
        raise ManifoldError(f"k-means needs 1 ≤ k ≤ {len(x)} (number of points); got k={k}")
    km = KMeans(n_clusters=k, n_init=10, random_state=seed).fit(x)
    idx = np.array([int(np.argmin(((x - c) ** 2).sum(1))) for c in km.cluster_centers_])
    return idx, km.labels_


def pc_traversal(latents: Tensorish, pc: int = 0, n_points: int = 10,
                 lim: tuple[float, float] = (5.0, 95.0)) -> np.ndarray:
    """``n_points`` latent points along principal component ``pc`` (0-based) between the ``lim`` percentiles of
    the data's PC coordinates, through the data mean (``cryodrgn pc_traversal``)."""
    x = np.asarray(latents, np.float64)
    coords, fit = pca(x, min(x.shape[1], pc + 1))
    if pc >= fit.n_components_:
        raise ManifoldError(f"PC {pc + 1} does not exist: the latent space has {fit.n_components_} components")
    lo, hi = np.percentile(coords[:, pc], lim)
    steps = np.linspace(lo, hi, n_points)
    return (fit.mean_[None] + steps[:, None] * fit.components_[pc][None]).astype(np.float32)


def nearest_structure(volume: Tensorish, maps: Tensorish, names: Sequence[str]) -> tuple[str, float, np.ndarray]:
    """Name and Pearson correlation of the known map most like ``volume`` (same box, no alignment), and all scores."""
    v = np.asarray(volume, np.float64).ravel()
    m = np.asarray(maps, np.float64).reshape(len(maps), -1)
    if m.shape[1] != v.size:
        raise ManifoldError(f"the template set is {np.shape(maps)[-1]}³ but the volume is {np.shape(volume)[-1]}³")
    v = (v - v.mean()) / (v.std() + 1e-12)
    m = (m - m.mean(1, keepdims=True)) / (m.std(1, keepdims=True) + 1e-12)
    scores = m @ v / v.size
    best = int(np.argmax(scores))
    return str(names[best]), float(scores[best]), scores
