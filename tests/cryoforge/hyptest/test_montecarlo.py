"""Tests of :mod:`cryoforge.hyptest.montecarlo`."""

import numpy as np
import pandas as pd
import pytest
import starfile

from cryoforge.hyptest.config import ScoreConfig
from cryoforge.hyptest.montecarlo import (
    HypothesisTester,
    HypTestConfig,
    bh_qvalues,
    check_resolution,
    gaussian_tail,
    p_value,
)
from cryoforge.hyptest.score import score_templates
from cryoforge.hyptest.templates import check_templates
from cryoforge.jobs import Preview, Result, drive


def test_p_value_is_a_direct_count_and_the_gaussian_tail():
    null = np.array([0.1, 0.3, 0.5, 0.5, 0.7, 0.9, 0.2, 0.4])
    assert p_value(0.5, null) == 4 / 8  # ties count against the template
    assert p_value(0.95, null) == 0.0
    assert p_value(0.0, null) == 1.0
    z, p = gaussian_tail(null.mean() + null.std(ddof=1), null)
    assert z == pytest.approx(1.0) and p == pytest.approx(0.158655, rel=1e-4)


def test_bh_matches_scipy():
    from scipy.stats import false_discovery_control

    p = np.random.default_rng(3).uniform(size=50) ** 2
    assert np.allclose(bh_qvalues(p), false_discovery_control(p, method="bh"))
    with pytest.raises(ValueError):
        bh_qvalues([0.2, 1.5])


def test_bad_inputs_are_clear():
    with pytest.raises(ValueError, match="cannot reach"):
        check_resolution(99, 0.01)
    check_resolution(100, 0.01)
    with pytest.raises(ValueError, match="mixes box sizes"):
        check_templates([np.zeros((16, 16, 16)), np.zeros((32, 32, 32))])
    with pytest.raises(ValueError, match="match the subtomogram"):
        score_templates(np.zeros((16, 16, 16)), np.zeros((2, 20, 20, 20)))


def test_p_text_says_below_the_resolution_of_the_null_set():
    from cryoforge.hyptest.montecarlo import p_text

    assert p_text(0.0, 999) == "< 0.001" and p_text(0.25, 999) == "= 0.25"


FAST_SCORE = ScoreConfig(coarse_box=12, n_rotations=200, candidates=2, neighbours=2, fine_box=16)


def test_hypothesis_test_result_is_consistent(trained):
    d, maps, _, _ = trained
    cfg = HypTestConfig(n_pseudo=100, kde_rotations=30, score=FAST_SCORE)
    tester = HypothesisTester.from_checkpoint(d / "reg.pt", maps, ["a", "b", "c"], cfg)
    p = maps[1] + np.random.default_rng(0).normal(size=maps[1].shape).astype(np.float32) * 0.05
    events = list(tester.test_job(p, None, truth=1))
    res = events[-1].value
    assert isinstance(events[-1], Result)
    assert res.best_name == "b" and res.cond1
    assert res.B == 100 + 2 and res.n_pseudo == 100
    null = np.concatenate([res.pseudo_scores, np.delete(res.known_scores, res.best)])
    assert res.p_hat == p_value(res.score, null) == np.mean(null >= res.score)
    assert res.success == (res.cond1 and res.p_hat <= 0.01)
    live = [e for e in events if isinstance(e, Preview) and e.name == "pseudo scores"]
    assert live and live[-1].array.shape == (2, 100)
    assert tester.pseudo_volume(1, 0).shape == (32, 32, 32)


def test_the_neighbour_null_draws_pseudo_complexes_near_the_best_templates_codes(trained):
    from cryoforge.hyptest.null import in_rejection_region, template_codes

    d, maps, _, _ = trained
    paper = HypothesisTester.from_checkpoint(d / "reg.pt", maps, list("abc"),
                                             HypTestConfig(n_pseudo=100, kde_rotations=30, score=FAST_SCORE))
    near = HypothesisTester.from_checkpoint(d / "reg.pt", maps, list("abc"),
                                            HypTestConfig(n_pseudo=100, kde_rotations=30, null_spread=0.5,
                                                          score=FAST_SCORE))
    codes = template_codes(near.reg, near.templates[1], 30, near.cfg.seed + 7919 * 2)  # the codes null_set uses

    def nearest(z):
        return np.median(np.sqrt(((z.numpy()[:, None] - codes[None]) ** 2).sum(-1)).min(1))

    zn, zp = near.null_set(1)["z"], paper.null_set(1)["z"]
    assert len(zn) == 100 and nearest(zn) < 0.6 * nearest(zp)
    assert nearest(zn) == pytest.approx(0.5 * np.sqrt(zn.shape[1]), rel=0.3)  # spread·√d from its own code
    from cryoforge.hyptest.null import fit_kde

    assert not in_rejection_region(zn.numpy(), fit_kde(codes), near.cfg.prior).any()
    res = near.test(maps[1], None, truth=1)
    null = np.concatenate([res.pseudo_scores, np.delete(res.known_scores, res.best)])
    assert res.B == 102 and res.p_hat == p_value(res.score, null)


def test_dataset_table_with_q_values(trained, tmp_path):
    d, maps, _, _ = trained
    cfg = HypTestConfig(n_pseudo=100, kde_rotations=30, score=FAST_SCORE)
    tester = HypothesisTester.from_checkpoint(d / "reg.pt", maps, ["a", "b", "c"], cfg)
    table = drive(tester.dataset_job(maps[[0, 2]], None, truths=[0, 2]))
    rows = table.rows
    assert len(rows) == 2 and all(r.q >= r.p_hat for r in rows)
    csv = pd.read_csv(table.write(tmp_path / "t.csv"))
    assert list(csv["truth"]) == ["a", "c"]
    star = starfile.read(table.write(tmp_path / "t.star"))
    assert len(star) == 2 and "p_hat" in star.columns
    with pytest.raises(ValueError, match=".csv or .star"):
        table.write(tmp_path / "t.txt")


def test_bad_inputs(trained):
    d, maps, _, _ = trained
    with pytest.raises(ValueError, match="cannot reach"):
        HypothesisTester.from_checkpoint(d / "reg.pt", maps, list("abc"), HypTestConfig(n_pseudo=50))
    with pytest.raises(ValueError, match="box"):
        HypothesisTester.from_checkpoint(d / "reg.pt", np.zeros((3, 64, 64, 64)), list("abc"))
    with pytest.raises(ValueError, match="names"):
        HypothesisTester.from_checkpoint(d / "reg.pt", maps, ["a"])
