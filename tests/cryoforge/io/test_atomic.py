"""Tests of :mod:`cryoforge.io.atomic`."""

import os

import mrcfile
import numpy as np
import pytest

from cryoforge.cli import main
from cryoforge.io.atomic import OutputError, atomic_dir, clean_stale_parts, exclusive_lock
from cryoforge.io.mrc import write_mrc

SIM = ["simulate", "subtomos", "phantom:assembly", "--n-pairs", "2", "--box", "16", "--voxel-size", "24"]


def test_a_failed_rewrite_leaves_the_earlier_dataset_whole(tmp_path, monkeypatch, capsys):
    d = tmp_path / "ds"
    assert main(SIM + ["--out", str(d), "--seed", "1"]) == 0
    before = {p.name: p.read_bytes() for p in d.iterdir()}
    import cryoforge.sim.subtomo as subtomo

    calls = []

    def failing(path, *a, **k):  # the disk fills up after the first file of the rewrite
        calls.append(path)
        if len(calls) > 1:
            raise OSError("No space left on device")
        return write_mrc(path, *a, **k)

    monkeypatch.setattr(subtomo, "write_mrc", failing)
    assert main(SIM + ["--out", str(d), "--seed", "2", "--storage", "int8"]) == 2
    assert "No space left on device" in capsys.readouterr().err
    assert {p.name: p.read_bytes() for p in d.iterdir()} == before
    assert [p.name for p in tmp_path.iterdir()] == ["ds"]  # no .part folder, no lock file left


def test_a_rewrite_replaces_the_whole_folder_and_readers_refuse_mixed_ones(tmp_path, capsys):
    d = tmp_path / "ds"
    assert main(SIM + ["--out", str(d), "--seed", "1"]) == 0
    (d / "subtomos_b.mrc").rename(tmp_path / "b_of_run1.mrc")
    assert main(SIM + ["--out", str(d), "--seed", "2", "--n-pairs", "3"]) == 0
    with mrcfile.open(d / "subtomos_b.mrc") as m:
        assert m.data.shape[0] == 3
    os.replace(tmp_path / "b_of_run1.mrc", d / "subtomos_b.mrc")  # a user mixes two runs by hand
    capsys.readouterr()
    assert main(["align", "run", str(d), "--method", "classical"]) == 2
    assert "an incomplete or mixed dataset: subtomos_a.mrc 3, subtomos_b.mrc 2" in capsys.readouterr().err


def test_a_folder_of_other_files_is_never_replaced(tmp_path, capsys):
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("precious")
    assert main(SIM + ["--out", str(tmp_path / "mine")]) == 2
    assert "holds other files and no dataset.json" in capsys.readouterr().err
    assert [p.name for p in (tmp_path / "mine").iterdir()] == ["notes.txt"]


def test_two_writers_of_one_folder_or_checkpoint(tmp_path, capsys):
    with exclusive_lock(tmp_path / "ds"):
        assert main(SIM + ["--out", str(tmp_path / "ds")]) == 2
        assert f"is being written by another process (pid {os.getpid()})" in capsys.readouterr().err
    assert not (tmp_path / "ds").exists()
    write_mrc(tmp_path / "p.mrcs", np.random.default_rng(0).normal(size=(8, 16, 16)), 3.0)
    import pickle

    rot = np.tile(np.eye(3, dtype=np.float32), (8, 1, 1))
    with open(tmp_path / "poses.pkl", "wb") as fh:
        pickle.dump(rot, fh)
    train = ["drgn", "train", str(tmp_path / "p.mrcs"), "--poses", str(tmp_path / "poses.pkl"), "--no-ctf",
             "--dim", "8", "--layers", "1", "--steps", "2", "--validate-every", "0",
             "--checkpoint", str(tmp_path / "m.pt")]
    with exclusive_lock(tmp_path / "m.pt", "trained"):
        assert main(train) == 2
        assert "m.pt: is being trained by another process" in capsys.readouterr().err
    assert main(train) == 0


def test_parts_of_dead_writers_are_cleaned_up(tmp_path):
    dead = tmp_path / ".v.mrc.999999999-0a1b2c3d.part"
    dead.write_bytes(b"half a map")
    mine = tmp_path / f".v.mrc.{os.getpid()}-00000000.part"
    mine.write_bytes(b"being written")
    write_mrc(tmp_path / "v.mrc", np.zeros((4, 4, 4)), 1.0)
    assert not dead.exists() and mine.exists()  # a live writer's file stays
    (tmp_path / ".ds.999999999-0a1b2c3d.part").mkdir()
    assert clean_stale_parts(tmp_path / "ds") == [tmp_path / ".ds.999999999-0a1b2c3d.part"]


def test_atomic_dir_needs_its_marker(tmp_path):
    with pytest.raises(OutputError, match="not completed"):
        with atomic_dir(tmp_path / "out", "analysis.json") as tmp:
            (tmp / "vol.mrc").write_bytes(b"x")
    assert list(tmp_path.iterdir()) == []


def test_bad_output_paths_are_refused_before_the_work(tmp_path, capsys):
    import time

    d = tmp_path / "ds"
    assert main(SIM + ["--out", str(d)]) == 0
    write_mrc(tmp_path / "a.mrc", np.random.default_rng(0).normal(size=(16, 16, 16)), 2.0)
    (tmp_path / "afile").write_text("x")
    cases = [
        (["fsc", str(tmp_path / "a.mrc"), str(tmp_path / "a.mrc"), "--json", str(tmp_path)], "is a folder"),
        (["align", "run", str(d), "--out", str(tmp_path)], "is a folder"),
        (["align", "average", str(d), "--out", str(tmp_path / "afile")], "is a file; give a folder"),
        (["metadata", "x.star", "--json", str(tmp_path / "afile" / "m.json")], "afile is a file, not a folder"),
        (["drgn", "eval", "analytic:2", "--zfile", str(tmp_path / "z.txt"), "-o", str(tmp_path / "afile")],
         "afile is a file, not a folder"),
    ]
    np.savetxt(tmp_path / "z.txt", np.zeros((2, 2)))
    for argv, message in cases:
        capsys.readouterr()
        t0 = time.perf_counter()
        assert main(argv) == 2, argv
        err = capsys.readouterr().err
        assert message in err and err.count("\n") == 1 and time.perf_counter() - t0 < 3, (argv, err)
