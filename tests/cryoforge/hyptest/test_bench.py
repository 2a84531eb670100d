"""Tests of :mod:`cryoforge.hyptest.bench`."""

import pytest

from cryoforge.jobs import drive


@pytest.fixture(scope="module")
def three_templates(tmp_path_factory):
    """A template folder of three phantoms, made by the CLI (shared by this module's benches)."""
    from cryoforge.cli import main

    tdir = tmp_path_factory.mktemp("bench") / "templates"
    assert main(["hyptest", "templates", "phantom:ribosome", "phantom:assembly@4", "phantom:ring@2",
                 "--out", str(tdir)]) == 0
    return tdir


def _with_missing_source(tdir, tmp_path):
    import json
    import shutil

    other = tmp_path / "moved"
    shutil.copytree(tdir, other)
    meta = json.loads((other / "templates.json").read_text())
    meta["sources"][0] = str(tmp_path / "gone.pdb")
    (other / "templates.json").write_text(json.dumps(meta))
    return other


def test_bench_acquires_finer_bins_to_the_templates_and_reports_both_samplings(trained, three_templates, tmp_path):
    from cryoforge.hyptest.bench import HyptestBench, bench_hyptest

    d = trained[0]
    tdir = three_templates
    report = drive(bench_hyptest(HyptestBench(model=str(d / "reg.pt"), templates=str(tdir), n_pseudo=100, n_empty=1,
                                              calibration_cases=3, calibration_pseudo=10, calibration_rotations=100,
                                              rotations=300, speed_templates=50)))
    assert report["acquisition_voxel"] == 9.6 and report["template_voxel"] == 12.0
    assert report["score"]["n_rotations"] == 300  # the option reaches the scorer
    # per-voxel SNR 0.03 at 9.6 Å, binned to 12 Å: (12/9.6)³ ≈ 1.95× for white noise, less for the tomographic ramp
    assert 1.4 < report["snr_at_template_sampling"] / report["snr"] < 2.1
    for part in ("known", "known_direct"):
        assert report[part]["cases"] == 3 and len(report[part]["rows"]) == 3
    assert report["false_positives"]["cases"] == 2 and report["calibration"]["cases"] == 3
    assert report["speed"]["templates_timed"] == 50 and report["speed"]["score_1000_templates_s"] > 0
    from cryoforge.jobs.runner import JobError

    with pytest.raises(JobError, match="acquiring at 9.6 Å .* missing .*gone.pdb"):
        drive(bench_hyptest(HyptestBench(model=str(d / "reg.pt"), templates=str(_with_missing_source(tdir, tmp_path)),
                                         n_pseudo=100)))


def test_bench_with_the_neighbour_null_calibrated_p_and_without_false_positive_cases(trained, three_templates, tmp_path):
    import numpy as np

    from cryoforge.hyptest.bench import HyptestBench, bench_hyptest

    tdir = three_templates
    report = drive(bench_hyptest(HyptestBench(model=str(trained[0] / "reg.pt"), templates=str(tdir), n_pseudo=100,
                                              n_empty=0, calibration_cases=3, calibration_pseudo=10,
                                              calibration_rotations=100, rotations=200, speed_templates=10,
                                              acquisition_voxel=None, null_spread=1.0, alpha=0.25,
                                              reference_cases=3, reference_file=str(tmp_path / "ref.json"))))
    assert report["null_spread"] == 1.0 and report["known"]["cases"] == 3 and "known_direct" not in report
    assert report["false_positives"] == {"rows": [], "cases": 0, "rejected_fraction": None,
                                         "rejected_fraction_gaussian": None}
    cal, ref = report["calibration"], report["reference"]
    assert cal["cases"] == 3 and len(cal["p_hats"]) == 3 and all(0 <= p <= 1 for p in cal["p_hats"])
    # the reference: other seeds than the check's; every p is the rank of p̂ among its three p̂
    assert ref["cases"] == 3 and ref["seed"] != 0 and ref["p_hats"] != cal["p_hats"][:3]
    rank = [(1 + sum(h <= p + 1e-12 for h in ref["p_hats"])) / 4 for p in cal["p_hats"]]
    assert np.allclose(cal["p_cal"], rank) and "ks_p_cal" in cal
    for row in report["known"]["rows"]:
        assert row["p_cal"] == (1 + sum(h <= row["p_hat"] + 1e-12 for h in ref["p_hats"])) / 4
        assert row["cond2"] == (row["p_cal"] <= 0.25)
    from cryoforge.hyptest.calibration import Calibration

    saved = Calibration.read(ref["file"])  # the reference, for `hyptest test --calibration`
    assert saved.p_hats.tolist() == sorted(ref["p_hats"]) and saved.settings["null_spread"] == 1.0


def test_the_paper_case_presets_the_papers_acquisition_and_needs_its_own_templates_and_model():
    import numpy as np

    from cryoforge.hyptest.acquisition import simulate
    from cryoforge.hyptest.bench import HyptestBench, resolve_case
    from cryoforge.sim.sources import MapSpec, load_map

    with pytest.raises(ValueError, match="paper case needs -o templates=DIR .*--box 64 --voxel-size 6 --blur 2"):
        resolve_case(HyptestBench(case="paper"))
    with pytest.raises(ValueError, match="unknown hypothesis-test bench case 'papr'"):
        resolve_case(HyptestBench(case="papr"))
    o = resolve_case(HyptestBench(case="paper", templates="t", model="m.pt", n_pseudo=100))
    assert (o.snr, o.acquisition_voxel, o.defocus, o.cs, o.compare_direct, o.n_pseudo) == (0.03, None, 5.0, 2.0,
                                                                                           False, 100)
    assert resolve_case(HyptestBench(case="paper", templates="t", model="m.pt", snr=0.1)).snr == 0.1  # explicit wins
    assert resolve_case(HyptestBench()) == HyptestBench()  # the shipped case changes nothing
    maps = np.stack([load_map("phantom:ribosome", MapSpec(24, 16.0))] * 2)
    _, _, df = simulate(maps, 0.03, 0, voxel_size=16.0, defocus=5.0, cs=2.0)
    assert np.allclose(df, 5e4)  # Å, every subtomogram
    _, _, df = simulate(maps, 0.03, 0, voxel_size=16.0)
    assert 2e4 <= df.min() and df.max() <= 5e4 and df[0] != df[1]  # drawn in the simulator's range
