"""``cryoforge match extract --target``: seed 000's hypothesis test of every template-matching candidate
(:mod:`cryoforge.candidate_tests`), read back with starfile as another tool would."""

import numpy as np
import pytest
import starfile

from cryoforge.candidate_tests import candidate_subtomograms, target_indices
from cryoforge.cli import main
from cryoforge.hyptest.montecarlo import bh_qvalues
from cryoforge.hyptest.templates import read_template_set
from cryoforge.io.mrc import write_mrc
from cryoforge.io.tomo_particles import tomogram_centre
from tests.helpers import phantom_crowd


@pytest.fixture(scope="module")
def matched(tmp_path_factory):
    """A 96×96×48 tomogram at 12 Å of three ribosome and three proteasome phantoms (both in the shipped known set),
    matched with the ribosome at a 45° step."""
    d = tmp_path_factory.mktemp("tm")
    sim, maps = phantom_crowd()
    write_mrc(d / "tomo.mrc", sim.tomogram, 12.0)
    write_mrc(d / "template.mrc", maps[0], 12.0)
    assert main(["match", str(d / "tomo.mrc"), str(d / "template.mrc"), "--angular-step", "45", "--tilt-range", "-60",
                 "60", "--defocus", "3", "--out", str(d / "m")]) == 0
    return d, sim


def test_every_candidate_is_tested_and_fdr_keeps_the_targets_best_explained(matched, capsys):
    d, sim = matched
    common = ["match", "extract", str(d / "m"), "--n", "10", "--min-distance", "200", "--target", "ribosome",
              "--n-pseudo", "100", "--test-rotations", "2000"]
    capsys.readouterr()
    assert main([*common, "--out", str(d / "all.star")]) == 0
    out = capsys.readouterr().out
    assert "tested" in out and "known templates and 114 null templates" in out
    t = starfile.read(d / "all.star")["particles"]
    assert len(t) >= 3 and set(t["cfKnownBest"]) <= set(read_template_set()[1])
    cond1 = t["cfKnownBest"].to_numpy() == "ribosome"
    assert cond1.any() and (~cond1).any()  # ribosomes and proteasomes among the candidates
    assert (t["cfCond1"].to_numpy() == cond1).all()
    # p is p̂ where a target explains the candidate best, else 1; q is Benjamini–Hochberg over all candidates
    assert np.allclose(t["cfTestPValue"][cond1], t["cfPHat"][cond1]) and (t["cfTestPValue"][~cond1] == 1).all()
    assert t["cfPHat"][~cond1].isna().all()  # not scored against the pseudo-complexes
    assert np.allclose(t["cfTestQValue"], bh_qvalues(t["cfTestPValue"].to_numpy()))
    assert (t["cfTestQValue"][cond1] <= 0.05).all()  # SNR 1 ribosomes: significant
    # each ribosome-best candidate lies on a simulated ribosome, no other one does
    ribosomes = sim.particles.voxels(12.0, sim.tomogram.shape)[sim.particles.table["cfStructure"] == "ribosome"]
    pos = t[[f"rlnCenteredCoordinate{a}Angst" for a in "XYZ"]].to_numpy() / 12.0 + tomogram_centre((48, 96, 96))
    on_ribosome = np.linalg.norm(ribosomes[None] - pos[:, None], axis=2).min(1) <= 3
    assert (on_ribosome == cond1).all()

    assert main([*common, "--fdr", "0.05", "--out", str(d / "kept.star")]) == 0
    kept = starfile.read(d / "kept.star")["particles"]
    assert len(kept) == int((t["cfTestQValue"] <= 0.05).sum()) and (kept["cfKnownBest"] == "ribosome").all()

    assert main([*common[:-4], "--target", "4v5x", "--out", str(d / "x.star")]) == 2  # a name not in the set
    err = capsys.readouterr().err
    assert "4v5x: not among the known templates" in err and "ribosome" in err and not (d / "x.star").exists()
    assert main([*common, "--tomogram", str(d / "template.mrc"), "--out", str(d / "y.star")]) == 2
    assert "pass the tomogram it matched" in capsys.readouterr().err


def test_candidate_subtomograms_are_cut_at_the_templates_field_of_view():
    tomo = np.random.default_rng(0).normal(size=(40, 60, 60)).astype(np.float32)
    sub, mask = candidate_subtomograms(tomo, [[30, 30, 20]], 6.0, 12.0, 16, (-60, 60))  # 32³ at 6 Å → 16³ at 12 Å
    assert sub.shape == (1, 16, 16, 16) and mask.shape == (16, 16, 16)
    with pytest.raises(ValueError, match="coarser than the known templates"):
        candidate_subtomograms(tomo, [[30, 30, 20]], 16.0, 12.0, 16)
    with pytest.raises(ValueError, match="--target"):
        target_indices(["a", "b"], [])
