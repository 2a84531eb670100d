"""A tomogram and its particle list, end to end: extract the subtomograms (:mod:`cryoforge.tomograms.extract`),
average them (:mod:`cryoforge.align.particle_sets`: with the list's poses, without a reference, or against one) and
score every particle against the average in its pose — what the Subtomogram QA dock and ``cryoforge align average
TOMO.mrc --particles LIST`` run. It joins two families, so it sits on top of them (the layer table in
``tests/test_layers.py``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from .align.particle_sets import (
    aligned_slabs,
    average_set_job,
    particle_scores,
    reconstruct_job,
    reference_align_job,
    refined_particles,
)
from .fourier import lowpass
from .io.tomo_particles import SubtomogramSet, TomoParticles
from .jobs import Log, Result, stage
from .tomograms.extract import extract_job

if TYPE_CHECKING:
    import argparse
    from collections.abc import Iterator

    from .align.average import AverageResult
    from .align.config import AverageConfig
    from .hints import Tensorish
    from .jobs import Event
    from .jobs.distributed import World
    from .tomograms.extract import Extraction

POSES = ("given", "search", "reference")  # the list's poses; reference-free search; aligned to a reference


def extracted_set(ex: Extraction) -> SubtomogramSet:
    """An :class:`~cryoforge.tomograms.extract.Extraction` as the set the averaging jobs take (a mask of ones when
    the tilt range was not given; ``cfEdgeFraction`` in the particles' table, as the extraction's STAR has it)."""
    n = ex.subtomograms.shape[-1]
    mask = np.ones((n, n, n), np.float32) if ex.mask is None else ex.mask.astype(np.float32)
    p = ex.particles
    table = p.table.reset_index(drop=True).copy() if len(p.table) else pd.DataFrame(index=range(len(p)))
    table["cfEdgeFraction"] = ex.edge_fraction
    parts = TomoParticles(p.positions, p.rotations, p.tomograms, table, p.source, p.voxel_size)
    return SubtomogramSet(ex.subtomograms, mask, ex.voxel_size, parts, ex.folder or "(extracted in memory)")


def tomogram_set_job(tomogram: Tensorish, voxel_size: float, particles: TomoParticles, box: int, bin: int = 1,
                     tilt_range: tuple[float, float] | None = None,
                     defocus: float | None = None, world: World | None = None) -> Iterator[Event]:
    """Job: extract ``particles`` from ``tomogram`` (:func:`~cryoforge.tomograms.extract.extract_job`, nothing
    written; ``world``: its ranks share the work); ``Result`` is a
    :class:`~cryoforge.io.tomo_particles.SubtomogramSet`."""
    ex = yield from stage(extract_job(tomogram, voxel_size, particles, box, bin, tilt_range, defocus, world=world))
    yield Result(extracted_set(ex))


def open_tomogram_cli(args: argparse.Namespace) -> Iterator[Event]:
    """:func:`tomogram_set_job` for the command line's ``DATASET --particles LIST`` and the extraction options
    (:func:`cryoforge.cliargs.add_tomogram_options`)."""
    from .cliargs import tilt_range_of
    from .io.tomo_particles import read_tomogram_particles

    data, vs, parts, total = read_tomogram_particles(args.dataset, args.particles, args.voxel_size, args.name)
    if len(parts) < total:
        yield Log(f"{len(parts)} of the list's {total} particles are in {parts.tomograms[0]}")
    yield from tomogram_set_job(data, vs, parts, args.box, args.bin, tilt_range_of(args.tlt, args.tilt_range),
                                None if args.defocus is None else args.defocus * 1e4, getattr(args, "world", None))


@dataclass
class ParticleQA:
    """What the QA of a particle list holds: the extracted set (subtomograms, wedge mask, voxel size, the particles
    as listed), the average (:class:`~cryoforge.align.average.AverageResult`: maps, FSC, poses ``subtomogram ≈
    T(R, t) average``), each particle's correlation with the average in its pose, how the poses were found; the
    subtomograms in the average's frame (the gallery); the fraction of each box outside the tomogram and the refined
    particles (RELION 5 ready: poses, ``cfCorrelation``,
    ``rlnRandomSubset``)."""

    subtomograms: SubtomogramSet
    average: AverageResult
    scores: np.ndarray
    poses: str
    slabs: np.ndarray  # (N, n, n) each subtomogram in the average's frame, low-passed (display_resolution), its
    # central quarter along z averaged (aligned_slabs)

    @property
    def edge_fraction(self) -> np.ndarray:
        """The fraction of each box that lay outside the tomogram (0: inside)."""
        table = self.subtomograms.particles.table
        return np.asarray(table["cfEdgeFraction"] if "cfEdgeFraction" in table else np.zeros(len(self.scores)))

    @property
    def refined(self) -> TomoParticles:
        return refined_particles(self.subtomograms.particles, self.average, self.scores)

    def kept(self, threshold: float) -> TomoParticles:
        """The refined particles whose correlation is at least ``threshold``."""
        return self.refined.take(self.scores >= threshold)


def display_resolution(resolution: float, voxel_size: float) -> float:
    """The low-pass (Å) particles are shown at: 1.5 × the average's resolution, at least 3 voxels — single noisy
    particles show their shape only well below the resolution their average reaches."""
    res = float(resolution) if np.isfinite(resolution) else 0.0
    return max(1.5 * res, 3 * voxel_size)


def score_set(s: SubtomogramSet, res: AverageResult) -> np.ndarray:
    """Each particle's correlation with the average in its pose, up to the average's resolution (at least
    Nyquist)."""
    resolution = max(float(res.resolution), 2 * s.voxel_size) if np.isfinite(res.resolution) else None
    return particle_scores(s.subtomograms, s.mask, res.average, res.rotations, res.shifts, s.voxel_size, resolution)


def qa_job(tomogram: Tensorish, voxel_size: float, particles: TomoParticles, box: int, bin: int = 1,
           tilt_range: tuple[float, float] | None = None, defocus: float | None = None, poses: str = "given",
           reference: Tensorish | None = None, cfg: AverageConfig | None = None,
           device: str = "cpu") -> Iterator[Event]:
    """Job: extract, average (``poses``: ``given`` — the list's rotations, no search; ``search`` — reference-free
    (``cfg``); ``reference`` — aligned to ``reference``), score; ``Result`` is a :class:`ParticleQA`."""
    if poses not in POSES:
        raise ValueError(f"poses must be one of {POSES}; got {poses!r}")
    s = yield from stage(tomogram_set_job(tomogram, voxel_size, particles, box, bin, tilt_range, defocus))
    if poses == "given":
        job = reconstruct_job(s)
    elif poses == "search":
        job = average_set_job(s, cfg, device=device)
    elif reference is not None:
        job = reference_align_job(s, reference, device=device)
    else:
        raise ValueError("aligning to a reference needs the reference map")
    res = yield from stage(job)
    scores = score_set(s, res)
    yield Log(f"{len(scores)} particles scored against the average: correlation median {np.median(scores):.3f} "
              f"({scores.min():.3f} … {scores.max():.3f})")
    n = s.subtomograms.shape[-1]
    shown = lowpass(s.subtomograms, display_resolution(res.resolution, s.voxel_size), s.voxel_size)
    slabs = aligned_slabs(shown, res.rotations, res.shifts, thickness=max(1, n // 4))
    yield Result(ParticleQA(s, res, scores, poses, slabs))
