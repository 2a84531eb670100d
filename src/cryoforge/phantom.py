"""A reproducible synthetic density (a chiral cluster of Gaussian blobs) and noisy half maps.

Used as the built-in sample and in tests; it needs no atomic model and no file.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import torch

from .fourier import lowpass
from .geometry import centred_grid

if TYPE_CHECKING:
    from .hints import Tensorish



def blob_phantom(size: int = 64, voxel_size: float = 2.0, n_blobs: int = 24, seed: int = 0,
                 resolution: float | None = None) -> np.ndarray:
    """``(size, size, size)`` float32 density: ``n_blobs`` Gaussians of 2–5 Å … within 0.3·size of the centre.

    The arrangement has no symmetry (a chiral 'tail' along +x), so rotations and hand are visible.
    Optionally low-passed to ``resolution`` Å.
    """
    rng = np.random.default_rng(seed)
    p = centred_grid((size,) * 3, dtype=torch.float64).numpy()  # (Z, Y, X, 3) in (x, y, z)
    vol = np.zeros((size,) * 3)
    r_max = 0.3 * size
    centres = rng.normal(size=(n_blobs, 3)) * r_max / 2.5
    centres = np.clip(centres, -r_max, r_max)
    tail = np.array([[r_max * t, 0.25 * r_max * t * t, 0.1 * r_max * t] for t in (0.45, 0.7, 0.95)])
    centres = np.vstack([centres, tail])
    sigmas = rng.uniform(2.0, 5.0, len(centres)) / voxel_size
    amps = rng.uniform(0.5, 1.0, len(centres))
    for c, s, a in zip(centres, sigmas, amps, strict=True):
        d2 = ((p - c) ** 2).sum(-1)
        vol += a * np.exp(-d2 / (2 * s * s))
    vol = vol.astype(np.float32)
    if resolution is not None:
        vol = lowpass(torch.from_numpy(vol), resolution, voxel_size).numpy()
    return vol


def noisy_half_maps(volume: Tensorish, snr: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Two copies of ``volume`` with independent white Gaussian noise at ``snr`` = var(signal)/var(noise)."""
    v = np.asarray(volume, dtype=np.float32)
    rng = np.random.default_rng(seed)
    sigma = np.sqrt(v.var() / snr)
    a = (v + rng.normal(scale=sigma, size=v.shape)).astype(np.float32)
    b = (v + rng.normal(scale=sigma, size=v.shape)).astype(np.float32)
    return a, b
