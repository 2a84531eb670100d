"""Tests of :mod:`cryoforge.cliargs`."""

import numpy as np
import pytest

from cryoforge.cli import main
from cryoforge.io.mrc import write_mrc

CASES = [
    (["fsc", "a.mrc", "b.mrc", "--voxel-size", "-2"], "--voxel-size: must be > 0 Å"),
    (["fsc", "a.mrc", "b.mrc", "--mask-radius", "-5"], "--mask-radius: must be > 0 Å"),
    (["fsc", "a.mrc", "b.mrc", "--voxel-size", "nan"], "must be a finite number"),
    (["sample", "OUT", "--size", "0"], "--size: must be > 0 voxels"),
    (["sample", "OUT", "--snr", "-1"], "--snr: must be > 0"),
    (["align", "average", "d", "--lowpass", "-10"], "--lowpass: must be ≥ 0 Å"),
    (["align", "run", "d", "--limit", "-1"], "--limit: must be > 0 pairs"),
    (["align", "run", "d", "--rotations", "0"], "--rotations: must be > 0"),
    (["align", "run", "d", "--candidates", "0"], "--candidates: must be > 0"),
    (["simulate", "particles", "phantom:ribosome", "--out", "OUT", "--cs", "nan"], "must be a finite number"),
    (["simulate", "subtomos", "--out", "OUT", "--tilt-step", "0"], "--tilt-step: must be > 0 °"),
    (["drgn", "train", "x.mrcs", "--dim", "0", "--checkpoint", "c.pt"], "--dim: must be > 0"),
    (["movie", "analytic", "--from", "0", "--to", "1", "--out", "m.gif", "--fps", "0"], "--fps: must be > 0"),
    (["metadata", "x.star", "--apix", "-1.3"], "--apix: must be > 0 Å"),
    (["mcgan", "train", "x.mrcs", "--size", "0", "--checkpoint", "c.pt"], "--size: must be > 0 px"),
]


def _nan_map(path, n=32, voxel=12.0, where=((1, 2, 3), (5, 5, 5))):
    d = np.random.default_rng(0).normal(size=(n, n, n)).astype(np.float32)
    for z, y, x in where:
        d[z, y, x] = np.nan
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        write_mrc(path, d, voxel)


@pytest.mark.parametrize("argv, message", CASES, ids=[" ".join(c[0][:2]) + " " + c[0][-2] for c in CASES])
def test_bad_numbers_are_one_line_and_exit_2(argv, message, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err and "Traceback" not in err
    assert list(tmp_path.iterdir()) == []  # nothing written


def test_inverted_band_limits_are_refused(tmp_path, capsys):
    write_mrc(tmp_path / "p.mrcs", np.zeros((4, 8, 8)), 2.0)
    assert main(["drgn", "train", str(tmp_path / "p.mrcs"), "--pose-search", "--no-ctf", "--l-start", "12",
                 "--l-end", "4", "--checkpoint", str(tmp_path / "c.pt")]) == 2
    assert "--l-end 4 is below --l-start 12" in capsys.readouterr().err and not (tmp_path / "c.pt").exists()


@pytest.mark.parametrize("command", [
    ["hyptest", "test", "{nan}", "--n-pseudo", "9", "--rotations", "10"],
    ["simulate", "map", "{nan}", "--out", "{tmp}/out.mrc", "--box", "32", "--voxel-size", "12"],
    ["fsc", "{nan}", "{nan}"],
])
def test_nan_data_is_refused_not_turned_into_a_result(command, tmp_path, capsys):
    _nan_map(tmp_path / "nan.mrc")
    argv = [a.format(nan=tmp_path / "nan.mrc", tmp=tmp_path) for a in command]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "2 NaN or infinite values; cryoforge computes on finite data only" in err and err.count("\n") == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["nan.mrc"]


def test_a_pair_dataset_with_nan_is_refused(tmp_path, capsys):
    import mrcfile

    d = tmp_path / "ds"
    assert main(["simulate", "subtomos", "phantom:assembly", "--out", str(d), "--n-pairs", "2", "--box", "16",
                 "--voxel-size", "24"]) == 0
    with mrcfile.open(d / "subtomos_b.mrc", mode="r+") as m:
        m.data[1, 3, 4, 5] = np.nan
    capsys.readouterr()
    assert main(["align", "run", str(d), "--method", "classical", "--out", str(tmp_path / "poses.star")]) == 2
    err = capsys.readouterr().err
    assert "subtomos_b.mrc: 1 NaN or infinite values" in err and err.count("\n") == 1
    assert not (tmp_path / "poses.star").exists()


@pytest.mark.parametrize("argv, message", [
    (["simulate", "particles", "phantom:multiblob", "-n", "100000000", "--box", "48", "--voxel-size", "4",
      "--out", "OUT"], "100000000 particle images of 48² px needs about"),
    (["simulate", "map", "phantom:ribosome", "--box", "4096", "--out", "m.mrc"], "a 4096³ map sampled 2× finer"),
    (["simulate", "subtomos", "phantom:assembly", "--tilt-step", "0.001", "--out", "OUT"], "180000 tilts per"),
    (["simulate", "subtomos", "phantom:assembly", "--n-pairs", "100000000", "--out", "OUT"], "100000000 subtomogram"),
    (["movie", "analytic", "--from", "0", "--to", "1", "--frames", "100000000", "--out", "m.gif"], "100000000 frames"),
    (["movie", "analytic:100000000", "--from", "0", "--to", "1", "--out", "m.gif"], "1 ≤ latent_dim ≤ 64"),
])
def test_runaway_sizes_are_refused_up_front(argv, message, tmp_path, capsys, monkeypatch):
    import resource
    import time

    monkeypatch.chdir(tmp_path)
    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    t0 = time.perf_counter()
    assert main(argv) == 2
    assert time.perf_counter() - t0 < 5.0
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss0 < 512 * 1024  # KiB: < 0.5 GiB more
    assert list(tmp_path.iterdir()) == []


def test_internal_errors_are_one_line_unless_debug(tmp_path, capsys, monkeypatch):
    import cryoforge.cli as cli

    def broken(args):
        raise KeyError("structures")

    monkeypatch.setattr(cli, "_cmd_info", broken)  # build_parser binds the command at call time
    assert main(["info", "x.mrc"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "internal error: KeyError: 'structures' (run again with --debug" in err
    with pytest.raises(KeyError):
        main(["--debug", "info", "x.mrc"])
    monkeypatch.undo()
    assert main(["info", str(tmp_path)]) == 2
    assert "is a folder, not an MRC file" in capsys.readouterr().err
