"""Averaging real particle sets: a folder of extracted subtomograms (``cryoforge extract``) averaged without a
reference (:func:`average_set_job`) or with the poses its STAR gives (:func:`reconstruct_job`), and the refined
poses written back as particles.

Poses follow :mod:`cryoforge.align.average`: ``subtomogram ≈ T(R, t) average``. A box was cut axis-aligned around the
particle's listed position ``p`` (Å, from the tomogram centre), so the particle is the average rotated by ``R`` and
sits at ``p + t · voxel size``: those are the refined particles (:func:`refined_particles`), written as a RELION 5
STAR with the shifts folded into the coordinates.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import torch

from ..io.tomo_particles import SubtomogramSet, TomoParticles, read_subtomogram_set
from ..jobs import Log, Metrics, Preview, Result
from ..metrics import GOLD_STANDARD, fsc, split_half_sets
from .average import AverageResult, average_job, weighted_average
from .config import AverageConfig

if TYPE_CHECKING:
    from collections.abc import Iterator

    from ..hints import PathLike
    from ..jobs import Event


def _set(source: PathLike | SubtomogramSet) -> SubtomogramSet:
    return source if isinstance(source, SubtomogramSet) else read_subtomogram_set(source)


def average_set_job(source: PathLike | SubtomogramSet, cfg: AverageConfig | None = None,
                    device: str = "cpu") -> Iterator[Event]:
    """Job: reference-free averaging (:func:`cryoforge.align.average.average_job`) of an extracted set, weighted by
    its wedge mask; ``Result`` is an :class:`~cryoforge.align.average.AverageResult`."""
    s = _set(source)
    yield Log(f"averaging {len(s.subtomograms)} subtomograms of {s.subtomograms.shape[-1]}³ at {s.voxel_size:g} Å "
              f"from {s.folder}")
    yield from average_job(s.subtomograms, s.mask, s.voxel_size, cfg, None, device)


def reconstruct_job(source: PathLike | SubtomogramSet, seed: int = 0, epsilon: float = 0.05,
                    device: str = "cpu") -> Iterator[Event]:
    """Job: average an extracted set with the rotations its STAR gives (no search; the particles sit on the box
    centres), in two gold-standard half sets (split by ``seed``); ``Result`` is an
    :class:`~cryoforge.align.average.AverageResult` whose report holds the one FSC."""
    s = _set(source)
    n = len(s.subtomograms)
    if n < 2:
        raise ValueError(f"a reconstruction needs at least 2 particles (one per half set); got {n}")
    dev = torch.device(device)
    x = torch.as_tensor(s.subtomograms).to(dev)
    m = torch.as_tensor(s.mask)[None].to(dev)
    rot = torch.as_tensor(s.particles.rotations, dtype=torch.float32).to(dev)
    sh = torch.zeros(n, 3, device=dev)
    halves = [torch.as_tensor(h) for h in split_half_sets(n, seed)]
    yield Log(f"reconstructing {n} subtomograms with the poses of {s.folder}/subtomograms.star")
    avgs = [weighted_average(x[h], m, rot[h], sh[h], None, epsilon) for h in halves]
    curve = fsc(avgs[0], avgs[1], s.voxel_size)
    res = curve.resolution(GOLD_STANDARD)
    report = {"n": n, "box": int(x.shape[-1]), "voxel_size_A": s.voxel_size, "poses": "given (no search)",
              "iterations": [{"iteration": 0, "resolution_0.143_A": res, "fsc": curve.fsc.tolist(),
                              "frequency_per_A": curve.frequency.tolist()}]}
    avg = ((avgs[0] + avgs[1]) / 2).cpu().numpy()
    yield Metrics({"resolution_0.143_A": res})
    yield Preview("average", avg, "volume", {"voxel_size": s.voxel_size})
    yield Result(AverageResult(avg, avgs[0].cpu().numpy(), avgs[1].cpu().numpy(), rot.cpu().numpy(),
                               sh.cpu().numpy(), [h.numpy() for h in halves], s.voxel_size, report))


def refined_particles(particles: TomoParticles, result: AverageResult) -> TomoParticles:
    """The particles with the averaging's poses: rotation ``R`` and position ``p + t · voxel size`` (module text)."""
    shifts = np.asarray(result.shifts, np.float64) * result.voxel_size
    table = particles.table.copy()
    table["rlnRandomSubset"] = 0
    for k, h in enumerate(result.halves):
        table.loc[np.asarray(h), "rlnRandomSubset"] = k + 1  # RELION's half-set label
    return TomoParticles(particles.positions + shifts, np.asarray(result.rotations, np.float64), particles.tomograms,
                         table, particles.source, particles.voxel_size)
