"""Fourier shell correlation (teamtomo's torch-fourier-shell-correlation), resolution in Å,
gold-standard half sets, and the mask-corrected FSC of Chen et al. (2013) as a job.

Shell ``i`` of an ``n``-voxel box holds spatial frequency ``i / (n * voxel_size)`` 1/Å.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch_fourier_shell_correlation import fourier_shell_correlation

from .conventions import as_tensor
from .fourier import freq_radius, spherical_mask
from .geometry import require_cubic
from .jobs import Metrics, Preview, Progress, Result

if TYPE_CHECKING:
    from collections.abc import Iterator

    from .hints import Tensorish
    from .jobs import Event


GOLD_STANDARD = 0.143
HALF = 0.5


@dataclass
class FSCCurve:
    """An FSC curve: ``frequency`` (1/Å) per shell and the correlation ``fsc``."""

    frequency: np.ndarray
    fsc: np.ndarray
    voxel_size: float

    def resolution(self, threshold: float = GOLD_STANDARD) -> float:
        """Resolution in Å where the curve first falls below ``threshold`` (linear between shells).

        When it never does, the Nyquist resolution ``2 * voxel_size`` is returned.
        """
        f, c = self.frequency, self.fsc
        below = np.nonzero(c[1:] < threshold)[0]
        if below.size == 0:
            return 1.0 / f[-1]
        i = below[0] + 1
        t = (c[i - 1] - threshold) / (c[i - 1] - c[i])
        return 1.0 / (f[i - 1] + t * (f[i] - f[i - 1]))

    def crossing_shell(self, threshold: float = GOLD_STANDARD) -> int | None:
        """Index of the first shell (after 0) below ``threshold``, or None."""
        below = np.nonzero(self.fsc[1:] < threshold)[0]
        return None if below.size == 0 else int(below[0] + 1)

    def as_dict(self) -> dict:
        return {
            "voxel_size_A": self.voxel_size,
            "frequency_per_A": self.frequency.tolist(),
            "fsc": self.fsc.tolist(),
            "resolution_0.143_A": self.resolution(GOLD_STANDARD),
            "resolution_0.5_A": self.resolution(HALF),
        }


def _check_pair(a, b) -> tuple[torch.Tensor, torch.Tensor]:
    a, b = as_tensor(a, torch.float32), as_tensor(b, torch.float32)
    if a.shape != b.shape:
        raise ValueError(f"FSC needs two maps of the same shape; got {tuple(a.shape)} and {tuple(b.shape)}")
    require_cubic(a, "FSC")
    for name, v in (("first", a), ("second", b)):
        if not torch.isfinite(v).all():
            raise ValueError(f"the {name} map contains NaN or infinite values; FSC is undefined")
    return a, b


def fsc(a: Tensorish, b: Tensorish, voxel_size: float = 1.0, mask: Tensorish | None = None) -> FSCCurve:
    """FSC between two cubic ``(n, n, n)`` maps, optionally after multiplying both by ``mask``."""
    a, b = _check_pair(a, b)
    if mask is not None:
        m = as_tensor(mask, torch.float32)
        a, b = a * m, b * m
    curve = fourier_shell_correlation(a, b)
    n = a.shape[-1]
    freq = np.arange(curve.shape[-1]) / (n * float(voxel_size))
    return FSCCurve(freq, curve.double().cpu().numpy(), float(voxel_size))


def split_half_sets(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Random gold-standard split of ``n`` particle indices into two halves (sorted), reproducible from ``seed``."""
    perm = np.random.default_rng(seed).permutation(n)
    return np.sort(perm[: (n + 1) // 2]), np.sort(perm[(n + 1) // 2 :])


def fsc_full_map(fsc_half: Tensorish) -> np.ndarray:
    """Expected FSC of the full map against a perfect reference from the half-map FSC: ``2F / (1 + F)``."""
    f = np.asarray(fsc_half, dtype=float)
    return 2 * f / (1 + f)


def randomize_phases(volume: Tensorish, beyond_frequency: float, voxel_size: float, seed: int) -> torch.Tensor:
    """Replace the Fourier phases beyond ``beyond_frequency`` (1/Å) with uniform random ones."""
    v = as_tensor(volume, torch.float32)
    ft = torch.fft.rfftn(v)
    k = freq_radius(v.shape, voxel_size, rfft=True)
    g = torch.Generator().manual_seed(int(seed))
    phi = torch.rand(ft.shape, generator=g) * 2 * math.pi
    ft = torch.where(k > beyond_frequency, torch.abs(ft) * torch.polar(torch.ones_like(phi), phi), ft)
    return torch.fft.irfftn(ft, s=v.shape)


@dataclass
class MaskedFSC:
    """FSC unmasked, masked, masked with phases randomised beyond ``randomize_beyond_A``, and the corrected curve."""

    unmasked: FSCCurve
    masked: FSCCurve
    randomized: FSCCurve
    corrected: FSCCurve
    randomize_beyond_A: float


def masked_fsc_job(a: Tensorish, b: Tensorish, voxel_size: float, mask_radius: float | None = None,
                   soft_edge: float = 3.0,
                   n_repeats: int = 4, seed: int = 0) -> Iterator[Event]:
    """Job: FSC corrected for mask effects by phase randomisation (Chen et al. 2013, as RELION postprocess).

    Phases beyond the frequency where the unmasked FSC first drops below 0.8 are randomised in each
    half map ``n_repeats`` times; ``FSC_true = (FSC_masked - FSC_random) / (1 - FSC_random)`` beyond it.
    ``mask_radius`` is in voxels (default: 0.4 of the box). Yields Progress/Preview/Metrics, then Result(MaskedFSC).
    """
    a, b = _check_pair(a, b)
    n, vs = a.shape[-1], float(voxel_size)
    radius = 0.4 * n if mask_radius is None else float(mask_radius)
    mask = spherical_mask(a.shape, radius, soft_edge)
    total = n_repeats + 2
    yield Progress(0, total, "unmasked FSC")
    unmasked = fsc(a, b, voxel_size)
    shell = unmasked.crossing_shell(0.8) or 1
    k_rand = unmasked.frequency[max(shell - 1, 1)]
    yield Progress(1, total, "masked FSC")
    masked = fsc(a, b, voxel_size, mask)
    yield Preview("FSC (masked)", np.stack([masked.frequency, masked.fsc]), "curve", {"voxel_size": vs})
    acc = np.zeros_like(masked.fsc)
    for r in range(n_repeats):
        ra = randomize_phases(a, k_rand, voxel_size, seed + 2 * r)
        rb = randomize_phases(b, k_rand, voxel_size, seed + 2 * r + 1)
        acc += fsc(ra, rb, voxel_size, mask).fsc
        yield Progress(2 + r, total, f"phase randomisation {r + 1}/{n_repeats}")
    rand = acc / max(n_repeats, 1)
    corr = masked.fsc.copy()
    beyond = masked.frequency > k_rand
    corr[beyond] = (masked.fsc[beyond] - rand[beyond]) / np.clip(1 - rand[beyond], 1e-6, None)
    corrected = FSCCurve(masked.frequency, corr, float(voxel_size))
    yield Preview("FSC (corrected)", np.stack([corrected.frequency, corrected.fsc]), "curve", {"voxel_size": vs})
    yield Metrics({"resolution_0.143_A": corrected.resolution(GOLD_STANDARD),
                   "resolution_0.5_A": corrected.resolution(HALF)})
    yield Progress(total, total, "done")
    yield Result(MaskedFSC(unmasked, masked, FSCCurve(masked.frequency, rand, float(voxel_size)),
                           corrected, 1.0 / k_rand))
