"""``cryoforge bench tm`` end to end at a toy size: phantoms of the shipped known set, one tomogram, a coarse search,
one decoy, the hypothesis test of every candidate; the report holds the calibration table for every level and
method, the speed figures and the two plots."""

import json

from cryoforge.cli import main


def test_the_template_matching_bench_reports_calibration_and_speed(tmp_path):
    opts = ["target=phantom:ribosome", 'others=["phantom:proteasome"]', "shape=[96,96,48]", "box=32",
            "voxel_size=12", "n_particles=8", "thickness=500", "snrs=[0.5]", "seeds=[0]", "angular_step=45", "decoys=1",
            "tilt_step=6", "match_radius=5", 'test_targets=["ribosome"]', "n_pseudo=100", f"plots={tmp_path / 'png'}"]
    assert main(["bench", "tm", *(a for o in opts for a in ("-o", o)), "--out", str(tmp_path / "tm.json")]) == 0
    r = json.loads((tmp_path / "tm.json").read_text())
    run = r["runs"][0]
    assert run["n_targets"] == 4 and run["true_peaks"] >= 3 and run["true_candidates"] >= 1  # noise-light: found
    assert 0 < run["rotation_over_fft_pair"] < 10 and run["voxel_rotations_per_s"] > 0
    s = r["summary"]["0.5"]
    tested = run["hyptest"]
    assert len(tested["best"]) == run["peaks"] and all(0 <= q <= 1 for q in tested["q"])
    assert all((b == "ribosome") == (p is not None) for b, p in zip(tested["best"], tested["p_hat"], strict=True))
    assert all(b == "ribosome" for b, t in zip(tested["best"], tested["true"], strict=True) if t)  # SNR 0.5 targets
    for method in ("decoy_tdc", "gaussian_bh", "hyptest_bh"):
        assert set(s[method]) == {"0.01", "0.05", "0.1"}
        for row in s[method].values():
            assert 0 <= row["fdr_mean"] <= 1 and 0 <= row["recall_mean"] <= 1
    assert {"fdr_mean", "recall_mean"} <= set(s["gaussian_1fa"])
    assert all((tmp_path / "png" / f).stat().st_size > 5000 for f in ("tm_fdr.png", "tm_precision_recall.png"))
