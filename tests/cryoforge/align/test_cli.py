"""Tests of :mod:`cryoforge.align.cli`."""

from cryoforge.sim.params import TomoParams


def test_cli_run_and_average_write_files(maps, tmp_path):
    import json

    import starfile

    from cryoforge.align.data import simulate_pairs
    from cryoforge.cli import main
    from cryoforge.sim.subtomo import write_pairs

    ds = simulate_pairs(maps[:1].numpy(), 8, TomoParams(snr=5.0, apply_ctf=False), seed=2, structures=["4v5d"])
    write_pairs(ds, tmp_path / "pairs")
    assert main(["align", "run", str(tmp_path / "pairs"), "--method", "classical", "--limit", "3", "--rotations", "1000",
                 "--candidates", "4", "--out", str(tmp_path / "poses.star")]) == 0
    table = starfile.read(tmp_path / "poses.star")
    assert len(table) == 3 and (table["error_rot_deg"] < 5).all()
    assert main(["align", "average", str(tmp_path / "pairs"), "--iterations", "1", "--rotations", "300",
                 "--out", str(tmp_path / "avg")]) == 0
    report = json.loads((tmp_path / "avg" / "average.json").read_text())
    assert report["n"] == 8 and (tmp_path / "avg" / "half2.mrc").is_file()
    # the local iterations by the shipped local Gum-Net
    assert main(["align", "average", str(tmp_path / "pairs"), "--iterations", "2", "--global-iterations", "1",
                 "--own-global-iterations", "0", "--local", "gumnet", "--rotations", "300", "--out", str(tmp_path / "avg_g")]) == 0
    rows = json.loads((tmp_path / "avg_g" / "average.json").read_text())["iterations"]
    assert [r["aligner"] for r in rows] == ["classical", "gumnet"] and rows[1]["align_seconds"] < rows[1]["seconds"]
    assert main(["align", "run", str(tmp_path / "nothing")]) == 2  # not a dataset: one clear error
