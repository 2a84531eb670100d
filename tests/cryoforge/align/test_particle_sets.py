"""Tests of :mod:`cryoforge.align.particle_sets`: a tomogram of known particles → extract → average with the given
poses and without a reference; the refined poses written back."""

import numpy as np
import pytest
import torch

from cryoforge.conventions import random_rotations, rotation_angle_deg
from cryoforge.io import read_mrc, write_mrc
from cryoforge.io.tomo_particles import TomoParticles, read_particle_list, write_relion5
from tests.helpers import correlation, tomogram_of_copies

BOX, VOXEL, SHAPE = 20, 6.0, (24, 72, 96)  # (Z, Y, X)


@pytest.fixture(scope="module")
def tomogram_set(tmp_path_factory):
    """12 rotated copies of an asymmetric map in a tomogram, at known positions (3 × 4 grid) and rotations."""
    d = tmp_path_factory.mktemp("tomo")
    rot = random_rotations(12, seed=5).double()
    vol, ref, xyz = tomogram_of_copies(rot, BOX, SHAPE, noise=0.05)
    write_mrc(d / "TS_9.mrc", vol, VOXEL)
    truth = TomoParticles.from_voxels(xyz, VOXEL, SHAPE, rot.numpy(), "TS_9")
    write_relion5(d / "truth.star", truth, VOXEL)
    return d, ref, truth


def test_extract_then_reconstruct_with_the_true_poses(tomogram_set, capsys):
    from cryoforge.cli import main

    d, ref, truth = tomogram_set
    assert main(["extract", str(d / "TS_9.mrc"), str(d / "truth.star"), "--box", str(BOX),
                 "--out", str(d / "ex")]) == 0
    assert main(["align", "reconstruct", str(d / "ex"), "--out", str(d / "rec")]) == 0
    assert "the STAR's poses, no search" in capsys.readouterr().out
    avg, info = read_mrc(d / "rec" / "average.mrc")
    assert info.voxel_size[0] == pytest.approx(VOXEL) and correlation(avg, ref) > 0.95
    for name in ("half1.mrc", "half2.mrc", "fsc.json", "fsc.png"):
        assert (d / "rec" / name).is_file()


def test_reference_free_average_of_an_extracted_set_writes_refined_particles(tomogram_set):
    from cryoforge.cli import main

    d, ref, truth = tomogram_set
    if not (d / "ex").is_dir():
        assert main(["extract", str(d / "TS_9.mrc"), str(d / "truth.star"), "--box", str(BOX),
                     "--out", str(d / "ex")]) == 0
    assert main(["align", "average", str(d / "ex"), "--iterations", "2", "--global-iterations", "1",
                 "--out", str(d / "avg")]) == 0
    refined = read_particle_list(d / "avg" / "particles.star")
    assert len(refined) == 12 and set(refined.table["rlnRandomSubset"]) == {1, 2}
    # reference-free poses hold up to one global rotation G (R_i = R_true_i G): G is the R_true_iᵀ R_i most of
    # the particles agree on
    rel = torch.from_numpy(np.einsum("nji,njk->nik", truth.rotations, refined.rotations))
    votes = [int((rotation_angle_deg(rel, g.expand_as(rel)) < 15).sum()) for g in rel]
    g = rel[int(np.argmax(votes))]
    err = rotation_angle_deg(torch.from_numpy(truth.rotations) @ g, torch.from_numpy(refined.rotations))
    assert float(torch.median(err)) < 12
    avg, _ = read_mrc(d / "avg" / "average.mrc")
    assert np.isfinite(avg).all() and avg.shape == (BOX,) * 3


def test_a_tomogram_and_its_list_aligned_to_a_reference_directly(tomogram_set):
    """``align run TOMO --particles LIST --reference MAP``: extracted, aligned, averaged, scored in one command; the
    reference fixes the frame, so the poses compare with the truth without a global rotation."""
    from cryoforge.cli import main

    d, ref, truth = tomogram_set
    write_mrc(d / "ref_coarse.mrc", np.pad(ref, 4), VOXEL)  # a larger box: cropped to the set's on reading
    assert main(["align", "run", str(d / "TS_9.mrc"), "--particles", str(d / "truth.star"), "--box", str(BOX),
                 "--reference", str(d / "ref_coarse.mrc"), "--rotations", "1000", "--candidates", "4",
                 "--out", str(d / "run")]) == 0
    found = read_particle_list(d / "run" / "particles.star")
    err = rotation_angle_deg(torch.from_numpy(truth.rotations), torch.from_numpy(found.rotations))
    assert float(torch.median(err)) < 10
    assert np.abs(found.positions - truth.positions).max() < 2 * VOXEL
    assert (found.table["cfCorrelation"] > 0.5).all()
    avg, _ = read_mrc(d / "run" / "average.mrc")
    assert correlation(avg, ref) > 0.9


def test_reconstruct_a_tomogram_with_its_lists_poses_and_score_the_particles(tomogram_set):
    from cryoforge.cli import main

    d, ref, truth = tomogram_set
    assert main(["align", "reconstruct", str(d / "TS_9.mrc"), "--particles", str(d / "truth.star"), "--box",
                 str(BOX), "--out", str(d / "rec2")]) == 0
    scored = read_particle_list(d / "rec2" / "particles.star")
    assert (scored.table["cfCorrelation"] > 0.8).all()
    assert main(["align", "reconstruct", str(d / "TS_9.mrc"), "--out", str(d / "rec3")]) == 2  # no list


def test_particle_scores_fall_for_wrong_poses(tomogram_set):
    from cryoforge.align.particle_sets import particle_scores
    from cryoforge.io.tomo_particles import read_subtomogram_set

    d, ref, truth = tomogram_set
    if not (d / "ex").is_dir():
        from cryoforge.cli import main

        assert main(["extract", str(d / "TS_9.mrc"), str(d / "truth.star"), "--box", str(BOX),
                     "--out", str(d / "ex")]) == 0
    s = read_subtomogram_set(d / "ex")
    right = particle_scores(s.subtomograms, s.mask, ref, truth.rotations, np.zeros((12, 3)), VOXEL)
    wrong = particle_scores(s.subtomograms, s.mask, ref, truth.rotations[::-1].copy(), np.zeros((12, 3)), VOXEL)
    off = particle_scores(s.subtomograms, s.mask, ref, truth.rotations, np.full((12, 3), 3.0), VOXEL)
    assert right.min() > 0.9 and wrong.max() < right.min() and off.max() < right.min()
