"""Tests of :mod:`cryoforge.drgn.bench`."""

from dataclasses import replace

import pytest

from cryoforge.jobs import drive


def test_bench_drgn_report_on_a_few_steps(shared_dir):
    from cryoforge.drgn.bench import DrgnBench, bench_drgn
    from cryoforge.samples import sample_path

    base = DrgnBench()
    known = replace(base.known, steps=2, dim=16, layers=1)
    shipped = drive(bench_drgn(DrgnBench(parts=("known_poses",), dataset=str(sample_path("adk_continuous")), batch=4,
                                         known=known)))
    row = shipped["known_poses"]
    assert row["n_images"] == 2000 and len(row["spearman_latent_vs_conformation"]) == 1
    assert 0 <= row["abs_spearman_best"] <= 1 and "per_image_fsc05_px" not in row  # only the ends are stored
    assert set(row["end_volumes"]) == {f"{e}_end_vs_{j}" for e in ("closed", "open") for j in ("closed", "open")}

    report = drive(bench_drgn(DrgnBench(
        batch=4, fsc_images=3, known=replace(known, n_images=48, box=16, voxel_size=8.0),
        pose_search=replace(base.pose_search, n_images=24, box=16, voxel_size=8.0, steps=4, layers=1, dim=16),
        ps_search={"pretrain_images": 8, "n_global": 576, "rounds": 2}, structures=str(shared_dir / "structures"))))
    per_image = report["known_poses"]["per_image_fsc05_px"]
    assert per_image["n"] == 3 and per_image["median"] >= 2.0  # Nyquist is 2 px
    ps = report["pose_search"]
    assert ps["n_images"] == 24 and ps["searched_fraction"] > 0
    assert 0 <= ps["pose_errors"]["rot_median_deg"] <= 180 and ps["fsc05_px_vs_middle_conformation"] >= 2.0
    with pytest.raises(Exception, match="unknown parts"):  # a JobError that names the parts
        drive(bench_drgn(DrgnBench(parts=("nope",))))
