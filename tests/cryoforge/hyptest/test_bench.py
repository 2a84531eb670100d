"""Tests of :mod:`cryoforge.hyptest.bench`."""

import pytest

from cryoforge.jobs import drive


def _with_missing_source(tdir, tmp_path):
    import json
    import shutil

    other = tmp_path / "moved"
    shutil.copytree(tdir, other)
    meta = json.loads((other / "templates.json").read_text())
    meta["sources"][0] = str(tmp_path / "gone.pdb")
    (other / "templates.json").write_text(json.dumps(meta))
    return other


def test_bench_acquires_finer_bins_to_the_templates_and_reports_both_samplings(trained, tmp_path):
    from cryoforge.cli import main
    from cryoforge.hyptest.bench import HyptestBench, bench_hyptest

    d = trained[0]
    tdir = tmp_path / "templates"
    assert main(["hyptest", "templates", "phantom:ribosome", "phantom:assembly@4", "phantom:ring@2",
                 "--out", str(tdir)]) == 0
    report = drive(bench_hyptest(HyptestBench(model=str(d / "reg.pt"), templates=str(tdir), n_pseudo=100, n_empty=1,
                                              calibration_cases=3, calibration_pseudo=10, calibration_rotations=100)))
    assert report["acquisition_voxel"] == 9.6 and report["template_voxel"] == 12.0
    # per-voxel SNR 0.03 at 9.6 Å, binned to 12 Å: (12/9.6)³ ≈ 1.95× for white noise, less for the tomographic ramp
    assert 1.4 < report["snr_at_template_sampling"] / report["snr"] < 2.1
    for part in ("known", "known_direct"):
        assert report[part]["cases"] == 3 and len(report[part]["rows"]) == 3
    assert report["false_positives"]["cases"] == 2 and report["calibration"]["cases"] == 3
    from cryoforge.jobs.runner import JobError

    with pytest.raises(JobError, match="acquiring at 9.6 Å .* missing .*gone.pdb"):
        drive(bench_hyptest(HyptestBench(model=str(d / "reg.pt"), templates=str(_with_missing_source(tdir, tmp_path)),
                                         n_pseudo=100)))
