"""``cryoforge bench scale`` end to end at a toy size: every job runs under torchrun (one process here: two are what
tests/cryoforge/jobs/test_distributed.py runs) and the report holds a rate, the workers' memory and the comparison
of the outputs for each."""

import json

from cryoforge.cli import main


def test_the_scale_bench_reports_every_job(tmp_path):
    opts = ["processes=[1]", "gumnet_preset=tiny", "gumnet_steps=20", "gumnet_batch=4", "stack_images=64", "stack_box=32",
            "drgn_steps=20", "drgn_batch=4", "align_pairs=2", "align_rotations=30", "eval_points=8",
            "average_subtomograms=4", "average_rotations=100",
            f"work={tmp_path / 'w'}"]
    assert main(["bench", "scale", *(a for o in opts for a in ("-o", o)), "--out", str(tmp_path / "s.json")]) == 0
    r = json.loads((tmp_path / "s.json").read_text())
    runs = r["runs"]["1"]
    assert set(runs) == {"gumnet_train", "drgn_train", "align_run", "drgn_eval", "average"}
    rates = [v for job in runs.values() for k, v in job.items() if k.endswith("_per_s")]
    assert len(rates) == 5 and all(v > 0 for v in rates)
    assert set(runs["average"]["seconds_per_iteration"]) == {"global", "local"}
    assert len(runs["drgn_train"]["peak_rss_mib"]) == 1 and min(runs["drgn_train"]["peak_rss_mib"]) > 50
    assert r["speedup"]["1"] == {job: 1.0 for job in runs}  # against itself: the first entry of processes
    assert r["identical_to_one_process"]["1"] == {"align_run": True, "drgn_eval": True, "average": True}
    assert (r["stack"]["images"], r["stack"]["box"], r["stack"]["dtype"]) == (64, 32, "float16")
