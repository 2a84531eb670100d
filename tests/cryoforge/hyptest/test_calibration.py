"""Tests of :mod:`cryoforge.hyptest.calibration`: calibrated p-values from simulated H0 cases."""

import numpy as np
import pytest

from cryoforge.hyptest.calibration import Calibration, ks_summary


def test_the_calibrated_p_is_the_rank_among_the_h0_cases_with_ties_against_the_subtomogram():
    cal = Calibration(np.array([0.3, 0.0, 0.1, 0.1]))
    assert cal.p_hats.tolist() == [0.0, 0.1, 0.1, 0.3] and cal.cases == 4 and cal.smallest == 0.2
    assert cal.p(0.0) == 2 / 5  # one H0 case at 0 ties with it
    assert cal.p(0.05) == 2 / 5
    assert cal.p(0.1) == 4 / 5  # both ties count
    assert cal.p(0.2) == 4 / 5 and cal.p(1.0) == 1.0
    assert Calibration(np.array([0.2, 0.5])).p(0.0) == 1 / 3  # below every H0 case: the smallest p
    for bad in ([], [0.1, 1.5], [np.nan]):
        with pytest.raises(ValueError, match="at least one H0 p̂"):
            Calibration(np.array(bad, float))


def test_the_p_hat_level_is_where_the_calibrated_p_crosses_alpha():
    rng = np.random.default_rng(3)
    for cases, alpha in ((199, 0.01), (300, 0.01), (120, 0.05), (40, 0.1), (99, 0.5), (9, 0.99)):
        cal = Calibration(np.round(rng.beta(1, 3, cases), 3))  # rounded: ties, as p̂ = k/B has
        level = cal.p_hat_level(alpha)
        grid = np.unique(np.concatenate([cal.p_hats, cal.p_hats + 1e-6, cal.p_hats - 1e-6, np.linspace(0, 1, 501)]))
        for p_hat in grid[(grid >= 0) & (grid <= 1)]:
            assert (cal.p(p_hat) <= alpha) == (p_hat < level), (cases, alpha, p_hat, level)
    assert Calibration(np.zeros(300)).p_hat_level(0.01) == 0.0  # every H0 case at 0: nothing is significant
    assert Calibration(np.full(10, 0.5)).p_hat_level(0.01) == 0.0  # too few cases for α
    assert Calibration(np.full(10, 0.5)).p_hat_level(1.0) == 1.0


def test_calibration_makes_an_anti_conservative_statistic_uniform_under_its_h0():
    rng = np.random.default_rng(0)
    skewed = rng.beta(1, 3, 3400)  # "p̂" piled towards 0 under H0, as the neighbour null's at 32³
    cal = Calibration(skewed[:3000])  # its own sampling error, ≈ 1/√M, adds to the check's
    fresh = skewed[3000:]
    assert ks_summary(fresh)["ks_p"] < 1e-6 and ks_summary(fresh)["fraction_le_0.05"] > 0.1
    p = np.array([cal.p(x) for x in fresh])
    k = ks_summary(p)
    assert k["ks_p"] > 0.01 and abs(k["mean"] - 0.5) < 0.03 and k["fraction_le_0.05"] < 0.07


def test_a_calibration_for_another_null_or_too_small_for_alpha_is_refused(tmp_path):
    cal = Calibration(np.linspace(0, 1, 199), {"null_spread": 1.0, "prior": 1.0, "box": 32})
    cal.check(1.0, 1.0, 0.01, 32)
    with pytest.raises(ValueError, match="neighbour null at τ = 1, the test uses the paper's prior null"):
        cal.check(None, 1.0, 0.01, 32)
    with pytest.raises(ValueError, match="prior π = 1, the test uses 2"):
        cal.check(1.0, 2.0, 0.01, 32)
    with pytest.raises(ValueError, match="32³ templates, the test's are 64³"):
        cal.check(1.0, 1.0, 0.01, 64)
    with pytest.raises(ValueError, match="at least 1/51 .* use at least 99 cases"):
        Calibration(np.linspace(0, 1, 50)).check(None, 1.0, 0.01)
    path = cal.write(tmp_path / "cal.json")
    back = Calibration.read(path)
    assert np.array_equal(back.p_hats, cal.p_hats) and back.settings == cal.settings
    (tmp_path / "other.json").write_text('{"rows": []}')
    with pytest.raises(ValueError, match="not a hypothesis-test calibration"):
        Calibration.read(tmp_path / "other.json")
    with pytest.raises(ValueError, match="not a readable calibration"):
        Calibration.read(tmp_path / "missing.json")


def test_h0_cases_are_deterministic_in_their_seed_and_a_calibrated_tester_decides_on_p(trained):
    from cryoforge.hyptest.config import HypTestConfig, ScoreConfig
    from cryoforge.hyptest.h0 import h0_job
    from cryoforge.hyptest.montecarlo import HypothesisTester
    from cryoforge.jobs import drive

    d, maps = trained[0], trained[1]
    cfg = HypTestConfig(n_pseudo=100, alpha=0.4, null_spread=1.0, kde_rotations=12, score=ScoreConfig(n_rotations=100))
    tester = HypothesisTester.from_checkpoint(d / "reg.pt", maps, ["a", "b", "c"], cfg)
    n = maps.shape[-1]

    def acquire(structures, seed):  # noise-free "acquisition": the structures themselves
        return structures.numpy(), np.full(len(structures), 3e4)

    def run(seed):
        return drive(h0_job(tester, 2, seed, acquire, lambda df: None, None, pseudo=10, rotations=50))

    (a, rej), (b, _), (c, _) = run(0), run(0), run(1)
    assert a.shape == (2,) and np.array_equal(a, b) and not np.array_equal(a, c) and rej >= 0
    assert np.all((a >= 0) & (a <= 1)) and n == 32
    tester.calibrate(Calibration(a, {"null_spread": 1.0, "prior": 1.0, "box": 32}))
    r = tester.decide(np.array([0.9, 0.1, 0.2]), np.linspace(0, 0.5, 100), 0)
    assert r.p_hat == 0.0 and r.p_cal == tester.calibration.p(0.0) and r.p == r.p_cal
    assert r.cond2 == (r.p_cal <= 0.4) and "p_cal" in r.to_json()
    with pytest.raises(ValueError, match="paper's prior null"):
        tester.calibrate(Calibration(a, {"null_spread": None}))


def test_the_shipped_calibration_is_for_the_shipped_model_with_the_neighbour_null_at_the_tests_null_size():
    from cryoforge.hyptest.config import HypTestConfig
    from cryoforge.samples import HYPTEST_NEIGHBOUR_CALIBRATION, sample_path

    cal = Calibration.read(sample_path(HYPTEST_NEIGHBOUR_CALIBRATION))
    cal.check(1.0, 1.0, 0.01, 32)  # usable at α = 0.01 with the shipped 32³ set
    s = cal.settings
    assert cal.cases == 200 and s["model"] == "shipped" and s["pseudo"] == HypTestConfig().n_pseudo
    assert s["snr"] == 0.03 and s["tilt_range"] == [-60.0, 60.0] and s["acquisition_voxel"] == 12.0
    # its p̂ under H0 are not uniform (the neighbour null's p̂ alone is anti-conservative): why it is shipped
    assert ks_summary(cal.p_hats)["ks_p"] < 1e-6 and cal.p_hats.min() > 0
