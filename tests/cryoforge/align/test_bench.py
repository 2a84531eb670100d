"""Tests of :mod:`cryoforge.align.bench`."""

from cryoforge.jobs import drive


def test_bench_align_report_on_a_few_pairs():
    from cryoforge.align.bench import STRUCTURES, AlignBench, bench_align

    report = drive(bench_align(AlignBench(n_pairs=3, methods=("gumnet", "classical"), averaging=False,
                                              snrs=(100.0,))))
    rows = report["alignment"]["snr100"]
    assert {"gumnet", "classical"} <= set(rows) and rows["gumnet_speedup_vs_classical"] > 1
    for name in ("gumnet", "classical"):
        assert rows[name]["pairs_per_s"] > 0 and 0 <= rows[name]["rot_deg_mean"] <= 180
        assert 0 <= rows[name]["rot_frob_mean"] <= 2 * 2 ** 0.5
    assert rows["classical"]["rot_deg_mean"] < 20  # SNR 100: the search finds the pose
    assert set(rows["classical"]["per_structure_rot_deg_median"]) == set(STRUCTURES[:3])
    # beside each Gum-Net, the same model with the statistics stored in training (3 pairs < 8: nothing recalibrated)
    assert rows["gumnet_stored_norm"]["norm_from_these_pairs"] == 0 == rows["gumnet"]["norm_from_these_pairs"]


def test_learning_curves_and_the_local_range(tmp_path):
    """Learning curves come from a checkpoint's validation history (pairs seen: val_pairs_seen, or step × batch for
    older checkpoints) and the bench plots one per model; the local-range rows sit beside the no-rotation guess."""
    from cryoforge.align.bench import AlignBench, bench_align, learning_curve

    history = [{"step": 10, "loss": 0.5}, {"step": 20, "val_snr100_rot_deg": 30.0, "val_snr0.1_rot_deg": 40.0},
               {"step": 40, "val_pairs_seen": 640.0, "val_snr100_rot_deg": 20.0, "val_snr0.1_rot_deg": 35.0,
                "val_gate_range_deg": 45.0}]
    curve = learning_curve(history, batch=16)
    assert curve["pairs_seen"] == [320.0, 640.0] and curve["snr100_rot_deg"] == [30.0, 20.0]
    assert curve["snr0.1_rot_deg"] == [40.0, 35.0] and curve["gate_range_deg"][1] == 45.0
    report = drive(bench_align(AlignBench(n_pairs=4, methods=("gumnet",), averaging=False, snrs=(100.0,),
                                          stored_norm=False, local_range=20.0, curves=str(tmp_path))))
    local = report["local"]["snr100"]
    assert local["no_rotation"]["range_deg"] == 20.0 and 0 < local["no_rotation"]["rot_deg_mean"] <= 20.0
    assert 0 <= local["gumnet"]["rot_deg_mean"] <= 180
    assert (tmp_path / "curve_gumnet.png").stat().st_size > 5000 and report["curves"]["gumnet"].endswith(".png")
