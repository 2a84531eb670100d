"""Tests of :mod:`cryoforge.multicryogan.bench`."""

import numpy as np
import pytest

from cryoforge.jobs import drive


def test_bench_mcgan_report_on_a_few_steps(shared_dir, tmp_path):
    from cryoforge.multicryogan.bench import McganBench, bench_mcgan

    report = drive(bench_mcgan(McganBench(steps=2, n_images=64, points=4, validations=0,
                                          structures=str(shared_dir / "structures"), out_dir=str(tmp_path),
                                          cases=("discrete",))))
    proj = report["projector"]
    assert proj["fourier_pad2"]["relative_rms_error"] < proj["real_grid_sample"]["relative_rms_error"] < 0.05
    row = report["discrete"]
    assert row["steps"] == 2 and (tmp_path / "adk_discrete.pt").is_file()
    assert np.shape(row["fsccc_matrix"]) == (5, 5) == np.shape(row["fsccc_matrix_truth"])
    truth = np.asarray(row["fsccc_matrix_truth"])
    assert np.allclose(truth[1:, 1:], 1.0) and (truth[0, 1:] < 0.99).all()  # α < 0.25 closed, from 0.25 open
    assert 0 <= row["proportions"]["closed"] <= 1 and "max_abs_error" in row["proportions"]
    assert 0 < row["ends"]["fsc05_freq_end0"] <= 0.5
    ends = row["ends"]
    assert ends["fsc05_resolution_A_end0"] == pytest.approx(report["voxel_size_A"] / ends["fsc05_freq_end0"])
    for k in ("end0", "end1"):  # the interpolated crossing lies within the shell after the last one ≥ 0.5
        assert ends[f"fsc05_freq_{k}"] <= ends[f"fsc05_crossing_{k}"] <= min(ends[f"fsc05_freq_{k}"] + 1 / 32, 0.5)
    curves = row["ends_fsc"]  # per-shell curves whose trapezoid areas are the matrices' corner entries
    f = np.asarray(curves["frequency_cycles_per_px"]) / 0.5
    for key, m in (("generator", row["fsccc_matrix"]), ("truth", truth)):
        c = np.asarray(curves[key])
        assert len(c) == 17 and np.trapezoid(c, f) == pytest.approx(m[0][-1], abs=1e-6)
    assert row["proportions"]["ends_contrast_ratio"] == pytest.approx(
        (1 - row["fsccc_matrix"][0][-1]) / (1 - truth[0, -1]))
