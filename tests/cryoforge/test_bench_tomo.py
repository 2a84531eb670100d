"""``cryoforge bench tomo`` at a small size: a tomogram of phantom particles, extraction, averages with the true
poses and without a reference, jittered positions, and the particle lists' round trips, measured against the truth."""

import json


def test_bench_tomo_measures_the_tomogram_path_against_the_truth(tmp_path):
    from cryoforge.cli import main

    out = tmp_path / "tomo.json"
    opts = {"sources": '["phantom:assembly"]', "shape": "[192, 192, 40]", "voxel_size": "8", "n_particles": "16",
            "box": "32", "snr": "3", "thickness": "300", "tilt_step": "4", "iterations": "4",
            "global_iterations": "1", "jitter": "1.5"}
    argv = ["bench", "tomo"] + [a for k, v in opts.items() for a in ("-o", f"{k}={v}")]
    assert main([*argv, "--out", str(out)]) == 0
    (case,) = json.loads(out.read_text())["cases"]
    assert case["source"] == "assembly" and case["n_particles"] == 16 and case["extract_per_s"] > 0
    true, free, jit = case["true_poses"], case["reference_free"], case["jittered"]
    assert true["rotation_error_deg_mean"] < 0.01 and true["shift_error_vox_mean"] < 1e-6  # the truth, as given
    assert true["fsc0143_vs_truth_A"] < 4 * 8
    # reference-free, from the true and from jittered positions: most poses found, the map as good as the truth's
    for avg in (free, jit):
        assert avg["rotation_error_deg_median"] < 10 and avg["fraction_within_10deg"] >= 0.5
        assert avg["fsc0143_vs_truth_A"] < 1.2 * true["fsc0143_vs_truth_A"]
    assert jit["listed_shift_error_vox_mean"] > 0.8 and jit["shift_error_vox_max"] < 3
    trip = case["round_trip"]  # written and read back: the same poses, to the files' six decimals
    assert max(trip.values()) < 1e-4
