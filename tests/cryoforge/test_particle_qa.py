"""Tests of :mod:`cryoforge.particle_qa`: a tomogram and its list extracted, averaged with the list's poses and
scored; the wrongly posed particles score lowest and the threshold keeps the rest."""

import numpy as np

from cryoforge.io import read_mrc
from cryoforge.io.tomo_particles import TomoParticles
from tests.cryoforge.align.test_particle_sets import BOX, VOXEL, tomogram_set  # noqa: F401  (the fixture)


def test_qa_job_scores_and_keeps_by_threshold(tomogram_set):  # noqa: F811  (pytest passes the fixture)
    from cryoforge.jobs import drive
    from cryoforge.particle_qa import ParticleQA, qa_job

    d, ref, truth = tomogram_set
    vol, _ = read_mrc(d / "TS_9.mrc")
    bad = TomoParticles(truth.positions, truth.rotations[::-1].copy(), truth.tomograms, truth.table, "", VOXEL)
    mixed = TomoParticles(np.concatenate([truth.positions, bad.positions[:4]]),
                          np.concatenate([truth.rotations, bad.rotations[:4]]), np.full(16, "TS_9", object))
    qa = drive(qa_job(vol, VOXEL, mixed, BOX, tilt_range=(-60, 60)))
    assert isinstance(qa, ParticleQA) and qa.poses == "given" and qa.scores.shape == (16,)
    assert qa.scores[12:].max() < np.sort(qa.scores[:12])[2]  # the wrongly posed four score lowest
    kept = qa.kept(float(qa.scores[12:].max()) + 1e-6)
    assert 9 <= len(kept) <= 12 and "cfCorrelation" in kept.table and (qa.edge_fraction == 0).all()
