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
