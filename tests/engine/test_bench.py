"""The benchmark job runs and reports sane figures (timings are not asserted: benchmarks are not timed tests)."""

import numpy as np
import pytest
import torch

from cryoforge.bench_core import bench_core, nearest_shell_fsc
from cryoforge.jobs import drive


def test_reference_fsc_of_identical_maps_is_one():
    a = torch.randn(16, 16, 16)
    np.testing.assert_allclose(nearest_shell_fsc(a, a), 1.0, atol=1e-6)


def test_bench_core_report():
    report = drive(bench_core(sizes=(16,), repeats=1))
    (row,) = report["fsc"]
    assert row["n"] == 16 and row["torchfsc_s"] > 0 and row["nearest_shell_s"] > 0
    assert 0 <= row["max_abs_diff_shells_1_to_nyquist"] < 0.5
    assert report["ctf"]["ctfs_per_s"] > 0


def test_bench_align_report_on_a_few_pairs():
    from cryoforge.align.bench import STRUCTURES, bench_align

    report = drive(bench_align(n_pairs=3, methods=("gumnet", "classical"), averaging=False, snrs=(100.0,)))
    rows = report["alignment"]["snr100"]
    assert {"gumnet", "classical"} <= set(rows) and rows["gumnet_speedup_vs_classical"] > 1
    for name in ("gumnet", "classical"):
        assert rows[name]["pairs_per_s"] > 0 and 0 <= rows[name]["rot_deg_mean"] <= 180
        assert 0 <= rows[name]["rot_frob_mean"] <= 2 * 2 ** 0.5
    assert rows["classical"]["rot_deg_mean"] < 20  # SNR 100: the search finds the pose
    assert set(rows["classical"]["per_structure_rot_deg_median"]) == set(STRUCTURES[:3])


def test_bench_drgn_report_on_a_few_steps(shared_dir):
    from cryoforge.drgn.bench import bench_drgn
    from cryoforge.samples import sample_path

    small = {"steps": 2, "batch": 4, "dim": 16, "layers": 1}
    shipped = drive(bench_drgn(parts=["known_poses"], dataset=str(sample_path("adk_continuous")), **small))
    row = shipped["known_poses"]
    assert row["n_images"] == 2000 and len(row["spearman_latent_vs_conformation"]) == 1
    assert 0 <= row["abs_spearman_best"] <= 1 and "per_image_fsc05_px" not in row  # only the ends are stored
    assert set(row["end_volumes"]) == {f"{e}_end_vs_{j}" for e in ("closed", "open") for j in ("closed", "open")}

    report = drive(bench_drgn(n_images=48, box=16, voxel_size=8.0, fsc_images=3, ps_images=24, ps_box=16,
                              ps_voxel_size=8.0, ps_steps=4, ps_layers=1, ps_dim=16,
                              ps_search={"pretrain_images": 8, "n_global": 576, "rounds": 2},
                              structures=str(shared_dir / "structures"), **small))
    per_image = report["known_poses"]["per_image_fsc05_px"]
    assert per_image["n"] == 3 and per_image["median"] >= 2.0  # Nyquist is 2 px
    ps = report["pose_search"]
    assert ps["n_images"] == 24 and ps["searched_fraction"] > 0
    assert 0 <= ps["pose_errors"]["rot_median_deg"] <= 180 and ps["fsc05_px_vs_middle_conformation"] >= 2.0
    with pytest.raises(Exception, match="unknown parts"):  # a JobError that names the parts
        drive(bench_drgn(parts=["nope"]))


def test_bench_mcgan_report_on_a_few_steps(shared_dir, tmp_path):
    from cryoforge.multicryogan.bench import bench_mcgan

    report = drive(bench_mcgan(steps=2, n_images=64, points=4, structures=str(shared_dir / "structures"),
                               out_dir=str(tmp_path), cases=["discrete"]))
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


def test_bench_settings_are_checked_in_one_line(capsys):
    from cryoforge.cli import main

    assert main(["bench", "align", "-o", "n_pair=3"]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "has no setting n_pair" in err and "n_pairs=500" in err
    assert main(["bench", "core", "-o", "repeats=abc"]) == 2
    assert "repeats takes a number" in capsys.readouterr().err
    assert main(["bench", "align", "-o", "averaging=1"]) == 2
    assert "averaging takes true or false" in capsys.readouterr().err
