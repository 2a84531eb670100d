"""Averaging real particle sets: a folder of extracted subtomograms (``cryoforge extract``) averaged without a
reference (:func:`average_set_job`), aligned to a given reference (:func:`reference_align_job`) or averaged with the
poses its STAR gives (:func:`reconstruct_job`); each particle's correlation with the average in its pose
(:func:`particle_scores`, the QA dock's colour), and the refined poses written back as particles.

Poses follow :mod:`cryoforge.align.average`: ``subtomogram ≈ T(R, t) average``. A box was cut axis-aligned around the
particle's listed position ``p`` (Å, from the tomogram centre), so the particle is the average rotated by ``R`` and
sits at ``p + t · voxel size``: those are the refined particles (:func:`refined_particles`), written as a RELION 5
STAR with the shifts folded into the coordinates.
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

import numpy as np
import torch

from ..fourier import freq_radius
from ..geometry import transform_volumes
from ..io.tomo_particles import SubtomogramSet, TomoParticles, read_subtomogram_set
from ..jobs import Log, Metrics, Preview, Progress, Result
from ..jobs.distributed import World, all_cat, shard
from ..metrics import GOLD_STANDARD, fsc, split_half_sets
from ..search import SearchConfig, classical_align
from ..so3 import nearest_rotation
from .average import AverageResult, average_job, weighted_average
from .config import AverageConfig
from .warp import masked_pearson, warp_inverse

if TYPE_CHECKING:
    from collections.abc import Generator, Iterator

    from ..hints import PathLike, Tensorish
    from ..jobs import Event
    from .gumnet import GumNet


def _set(source: PathLike | SubtomogramSet) -> SubtomogramSet:
    return source if isinstance(source, SubtomogramSet) else read_subtomogram_set(source)


def average_set_job(source: PathLike | SubtomogramSet, cfg: AverageConfig | None = None,
                    device: str = "cpu", world: World | None = None, model: GumNet | None = None) -> Iterator[Event]:
    """Job: reference-free averaging (:func:`cryoforge.align.average.average_job`) of an extracted set, weighted by
    its wedge mask; ``Result`` is an :class:`~cryoforge.align.average.AverageResult`."""
    s = _set(source)
    yield Log(f"averaging {len(s.subtomograms)} subtomograms of {s.subtomograms.shape[-1]}³ at {s.voxel_size:g} Å "
              f"from {s.folder}")
    yield from average_job(s.subtomograms, s.mask, s.voxel_size, cfg, None, device, world, model)


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
    yield Log(f"reconstructing {n} subtomograms of {s.folder} with their list's poses")
    yield Result((yield from _half_set_average(x, m, rot, sh, s.voxel_size, seed, epsilon, "given (no search)")))


def _half_set_average(x: torch.Tensor, m: torch.Tensor, rot: torch.Tensor, sh: torch.Tensor, voxel_size: float,
                      seed: int, epsilon: float, poses: str) -> Generator[Event, None, AverageResult]:
    """Average ``x`` with the poses ``rot``, ``sh`` in two gold-standard half sets (split by ``seed``); yields the
    resolution and the average, returns the :class:`~cryoforge.align.average.AverageResult` (``poses`` says where
    the poses came from)."""
    halves = [torch.as_tensor(h) for h in split_half_sets(len(x), seed)]
    avgs = [weighted_average(x[h], m, rot[h], sh[h], None, epsilon) for h in halves]
    curve = fsc(avgs[0], avgs[1], voxel_size)
    res = curve.resolution(GOLD_STANDARD)
    report = {"n": len(x), "box": int(x.shape[-1]), "voxel_size_A": voxel_size, "poses": poses,
              "iterations": [{"iteration": 0, "resolution_0.143_A": res, "fsc": curve.fsc.tolist(),
                              "frequency_per_A": curve.frequency.tolist()}]}
    avg = ((avgs[0] + avgs[1]) / 2).cpu().numpy()
    yield Metrics({"resolution_0.143_A": res})
    yield Preview("average", avg, "volume", {"voxel_size": voxel_size})
    return AverageResult(avg, avgs[0].cpu().numpy(), avgs[1].cpu().numpy(), rot.cpu().numpy(), sh.cpu().numpy(),
                         [h.numpy() for h in halves], voxel_size, report)


def posed_average(average: Tensorish, rotations: Tensorish, shifts: Tensorish) -> torch.Tensor:
    """The average brought into each particle's pose, ``T(R, t) average`` ``(P, n, n, n)``: what each subtomogram
    should look like (before its missing wedge)."""
    avg = torch.as_tensor(np.asarray(average, np.float32))
    rot = torch.as_tensor(np.asarray(rotations, np.float32)).reshape(-1, 3, 3)
    sh = torch.as_tensor(np.asarray(shifts, np.float32)).reshape(-1, 3)
    return transform_volumes(avg.expand(len(rot), *avg.shape), rot, sh)


def aligned_slabs(subtomograms: Tensorish, rotations: Tensorish, shifts: Tensorish, thickness: int = 3,
                  chunk: int = 64) -> np.ndarray:
    """Each subtomogram brought into the average's frame (``ŝ(p) = s(R p + t)``, :func:`~cryoforge.align.warp.
    warp_inverse`) and its central ``thickness`` z planes averaged: ``(N, n, n)`` images that line up when the poses
    are right (the QA dock's gallery)."""
    x = torch.as_tensor(np.asarray(subtomograms, np.float32))
    rot = torch.as_tensor(np.asarray(rotations, np.float32)).reshape(-1, 3, 3)
    sh = torch.as_tensor(np.asarray(shifts, np.float32)).reshape(-1, 3)
    n = x.shape[-1]
    lo = n // 2 - thickness // 2
    out = np.empty((len(x), n, n), np.float32)
    for s in range(0, len(x), chunk):
        aligned = warp_inverse(x[s:s + chunk], rot[s:s + chunk], sh[s:s + chunk])
        out[s:s + chunk] = aligned[:, lo:lo + thickness].mean(1).numpy()
    return out


def particle_scores(subtomograms: Tensorish, mask: Tensorish, average: Tensorish, rotations: Tensorish,
                    shifts: Tensorish, voxel_size: float, resolution: float | None = None,
                    chunk: int = 64) -> np.ndarray:
    """Each particle's correlation with the average in its pose, ``(N,)``: Pearson's r of the subtomogram and
    ``T(R, t) average`` over the Fourier region the subtomogram sampled (``mask``, centred) up to ``resolution`` Å
    (default: all of it), so the missing wedge and the noise beyond the map's resolution do not count."""
    x = torch.as_tensor(np.asarray(subtomograms, np.float32))
    n = x.shape[-1]
    m = torch.as_tensor(np.asarray(mask, np.float32))
    if resolution:
        k = freq_radius((n, n, n), voxel_size)
        m = m * torch.fft.fftshift(k <= 1.0 / resolution).float()
    rot = np.asarray(rotations, np.float32).reshape(-1, 3, 3)
    sh = np.asarray(shifts, np.float32).reshape(-1, 3)
    out = np.empty(len(x), np.float32)
    for s in range(0, len(x), chunk):
        model = posed_average(average, rot[s:s + chunk], sh[s:s + chunk])
        out[s:s + chunk] = masked_pearson(x[s:s + chunk], model, m).numpy()
    return out


def reference_align_job(source: PathLike | SubtomogramSet, reference: Tensorish, cfg: SearchConfig | None = None,
                        lowpass: float = 0.0, seed: int = 0, epsilon: float = 0.05,
                        device: str = "cpu", chunk: int = 16, world: World | None = None) -> Iterator[Event]:
    """Job: align every subtomogram of a set to ``reference`` (a map on the set's grid; global search of
    :func:`cryoforge.search.classical_align`, low-passed to ``lowpass`` Å when > 0), then average with the poses
    found in two gold-standard half sets; ``Result`` is an :class:`~cryoforge.align.average.AverageResult` whose
    report holds the FSC and each particle's correlation with the reference. ``world``: one of several processes
    (``torchrun``): each aligns its block of the particles, and every rank gets all the poses."""
    world = world or World()
    s = _set(source)
    ref = torch.as_tensor(np.asarray(reference, np.float32))
    n = len(s.subtomograms)
    if tuple(ref.shape) != tuple(s.subtomograms.shape[1:]):
        raise ValueError(f"the reference is {tuple(ref.shape)} voxels but the subtomograms are "
                         f"{tuple(s.subtomograms.shape[1:])}; resample it to the set's box and voxel size "
                         f"({s.voxel_size:g} Å)")
    if n < 2:
        raise ValueError(f"aligning needs at least 2 particles (one per half set); got {n}")
    search = cfg or SearchConfig()
    if lowpass:
        search = replace(search, lowpass=min(1.0, 2 * s.voxel_size / lowpass))
    x = torch.as_tensor(s.subtomograms)
    m = torch.as_tensor(s.mask)[None]
    rot, sh = torch.empty(n, 3, 3), torch.empty(n, 3)
    yield Log(f"aligning {n} subtomograms to the reference ({search.global_rotations} rotations, "
              f"{search.candidates} refined)")
    mine = shard(n, world)
    for a in range(mine.start, mine.stop, chunk):
        b = min(a + chunk, mine.stop)
        r, t, _ = classical_align(ref[None], x[a:b], None, m, search, device=device)
        rot[a:b], sh[a:b] = r.cpu(), t.cpu()
        yield Progress(b - mine.start, len(mine), f"aligned {b - mine.start}/{len(mine)}"
                       + (f" (rank {world.rank} of {world.size}: particles {mine.start}–{mine.stop - 1})"
                          if world.size > 1 else ""))
    rot, sh = all_cat((rot[mine.start:mine.stop], sh[mine.start:mine.stop]), world)
    yield Result((yield from _half_set_average(x, m, rot, sh, s.voxel_size, seed, epsilon,
                                               "aligned to the reference")))


def refined_particles(particles: TomoParticles, result: AverageResult,
                      scores: np.ndarray | None = None) -> TomoParticles:
    """The particles with the averaging's poses: rotation ``R`` and position ``p + t · voxel size`` (module text);
    ``rlnRandomSubset`` says the half set, ``cfCorrelation`` each particle's score (:func:`particle_scores`)."""
    shifts = np.asarray(result.shifts, np.float64) * result.voxel_size
    table = particles.table.copy()
    table["rlnRandomSubset"] = 0
    for k, h in enumerate(result.halves):
        table.loc[np.asarray(h), "rlnRandomSubset"] = k + 1  # RELION's half-set label
    if scores is not None:
        table["cfCorrelation"] = np.asarray(scores, np.float64)
    return TomoParticles(particles.positions + shifts, nearest_rotation(result.rotations), particles.tomograms,
                         table, particles.source, particles.voxel_size)
