"""Bad numbers on the command line are one line on stderr and exit 2, before any work (issue 23's sweep, the
argument part): negative sizes, voxel sizes, radii and counts, NaN anywhere, inverted ranges."""

import numpy as np
import pytest

from cryoforge.cli import main
from cryoforge.io.mrc import MrcError, write_mrc

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


@pytest.mark.parametrize("voxel", [-2.0, 0.0, float("nan")])
def test_bad_voxel_sizes_never_reach_a_header(tmp_path, voxel):
    with pytest.raises(MrcError, match="voxel size must be positive"):
        write_mrc(tmp_path / "v.mrc", np.zeros((4, 4, 4)), voxel)
    assert not (tmp_path / "v.mrc").exists()


def _nan_map(path, n=32, voxel=12.0, where=((1, 2, 3), (5, 5, 5))):
    d = np.random.default_rng(0).normal(size=(n, n, n)).astype(np.float32)
    for z, y, x in where:
        d[z, y, x] = np.nan
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        write_mrc(path, d, voxel)


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
