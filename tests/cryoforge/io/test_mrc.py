"""Tests of :mod:`cryoforge.io.mrc`."""

import warnings

import mrcfile
import numpy as np
import pytest
import torch

from cryoforge.cli import main
from cryoforge.io import (
    MrcError,
    read_mrc,
    write_mrc,
)
from cryoforge.io.mrc import MrcWarning


@pytest.mark.parametrize("voxel", [-2.0, 0.0, float("nan")])
def test_bad_voxel_sizes_never_reach_a_header(tmp_path, voxel):
    with pytest.raises(MrcError, match="voxel size must be positive"):
        write_mrc(tmp_path / "v.mrc", np.zeros((4, 4, 4)), voxel)
    assert not (tmp_path / "v.mrc").exists()


def test_mrc_round_trip_with_voxel_size(tmp_path):
    data = np.random.default_rng(0).normal(size=(8, 10, 12)).astype(np.float64)
    write_mrc(tmp_path / "v.mrc", data, voxel_size=1.7, origin=(1.0, 2.0, 3.0))
    out, info = read_mrc(tmp_path / "v.mrc")
    assert out.dtype == np.float32 and out.shape == (8, 10, 12)
    np.testing.assert_allclose(out, data.astype(np.float32))
    assert info.voxel_size == pytest.approx((1.7, 1.7, 1.7))
    assert info.origin == pytest.approx((1.0, 2.0, 3.0))
    assert not info.is_stack and info.layer_scale() == pytest.approx((1.7, 1.7, 1.7))
    assert not list(tmp_path.glob(".*part"))  # no temp file left


def test_stack_and_memmap(tmp_path):
    stack = np.random.default_rng(1).normal(size=(5, 16, 16)).astype(np.float32)
    write_mrc(tmp_path / "s.mrcs", stack, voxel_size=(2.5, 2.5, 1.0))
    with mrcfile.open(tmp_path / "s.mrcs") as m:
        assert m.is_image_stack()
    data, info = read_mrc(tmp_path / "s.mrcs", mmap=True)
    assert isinstance(data, np.memmap)
    assert info.is_stack and info.layer_scale() == (1.0, 2.5, 2.5)
    np.testing.assert_array_equal(np.asarray(data[3]), stack[3])


def test_axis_order_from_header_is_honoured(tmp_path):
    zyx = np.arange(2 * 3 * 4, dtype=np.float32).reshape(2, 3, 4)
    with mrcfile.new(tmp_path / "p.mrc") as m:
        m.set_data(np.ascontiguousarray(zyx.transpose(2, 1, 0)))  # stored (X, Y, Z): sections along x
        m.header.mapc, m.header.mapr, m.header.maps = 3, 2, 1
    out, _ = read_mrc(tmp_path / "p.mrc")
    np.testing.assert_array_equal(out, zyx)


def test_truncated_file_is_a_clear_error(tmp_path):
    write_mrc(tmp_path / "ok.mrc", np.ones((16, 16, 16)), 1.0)
    raw = (tmp_path / "ok.mrc").read_bytes()
    (tmp_path / "cut.mrc").write_bytes(raw[: len(raw) // 2])
    with pytest.raises(MrcError, match="truncated"):
        read_mrc(tmp_path / "cut.mrc")


def test_non_mrc_with_mrc_extension(tmp_path):
    (tmp_path / "fake.mrc").write_text("this is a text file\n" * 100)
    with pytest.raises(MrcError, match="not a readable MRC file"):
        read_mrc(tmp_path / "fake.mrc")
    with pytest.raises(MrcError, match="no such file"):
        read_mrc(tmp_path / "missing.mrc")


def test_nan_map_warns_but_reads(tmp_path):
    d = np.ones((8, 8, 8), np.float32)
    d[0, 0, 0] = np.nan
    with pytest.warns(MrcWarning):
        write_mrc(tmp_path / "n.mrc", d, 1.0)
    with pytest.warns(MrcWarning, match="NaN"):
        out, info = read_mrc(tmp_path / "n.mrc")
    assert info.has_nonfinite and np.isnan(out[0, 0, 0])


def test_missing_voxel_size_warns(tmp_path):
    with mrcfile.new(tmp_path / "z.mrc") as m:
        m.set_data(np.ones((4, 4, 4), np.float32))
        m.voxel_size = 0.0
    with pytest.warns(MrcWarning, match="voxel size"):
        _, info = read_mrc(tmp_path / "z.mrc")
    assert info.voxel_size == (1.0, 1.0, 1.0) and info.voxel_size_missing


def test_volume_stack_round_trip_and_five_d_refused(tmp_path):
    data = np.random.default_rng(0).normal(size=(3, 4, 5, 6)).astype(np.float32)
    write_mrc(tmp_path / "vs.mrc", data, voxel_size=(2.0, 2.0, 2.0))
    with mrcfile.open(tmp_path / "vs.mrc") as m:
        assert m.is_volume_stack()
    back, info = read_mrc(tmp_path / "vs.mrc")
    np.testing.assert_array_equal(back, data)
    assert info.is_volume_stack and not info.is_stack and info.layer_scale() == (1.0, 2.0, 2.0, 2.0)
    with pytest.raises(MrcError, match="5-D"):
        write_mrc(tmp_path / "out.mrc", np.ones((2, 2, 4, 4, 4)))


def test_compact_dtypes(tmp_path):
    q = np.arange(-128, 128, dtype=np.float32).reshape(4, 8, 8)
    write_mrc(tmp_path / "q.mrc", q, dtype="int8")
    back, info = read_mrc(tmp_path / "q.mrc")
    assert info.file_dtype == "int8" and np.array_equal(back, q)
    with pytest.raises(MrcError, match="int8"):
        write_mrc(tmp_path / "bad.mrc", q + 0.5, dtype="int8")
    write_mrc(tmp_path / "h.mrc", q / 7, dtype="float16")
    back, info = read_mrc(tmp_path / "h.mrc")
    assert info.file_dtype == "float16" and np.allclose(back, q / 7, rtol=1e-3)


def test_failed_write_keeps_old_file(tmp_path):
    write_mrc(tmp_path / "keep.mrc", np.zeros((4, 4, 4)), 1.0)
    with pytest.raises(MrcError):
        write_mrc(tmp_path / "keep.mrc", np.array([["a"]]), 1.0)
    out, _ = read_mrc(tmp_path / "keep.mrc")
    assert out.shape == (4, 4, 4)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["keep.mrc"]


def test_files_that_are_not_mrc_by_their_header_are_refused(tmp_path, capsys):
    from cryoforge.cli import main

    torch.save({"w": torch.zeros(1000)}, tmp_path / "model.mrc")  # a checkpoint renamed .mrc
    with pytest.raises(MrcError, match="not a readable MRC file"):
        read_mrc(tmp_path / "model.mrc")
    assert main(["info", str(tmp_path / "model.mrc")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    with mrcfile.new(tmp_path / "c.mrc") as m:
        m.set_data(np.ones((4, 4, 4), np.complex64))
    with pytest.raises(MrcError, match="complex data"):
        read_mrc(tmp_path / "c.mrc")
    write_mrc(tmp_path / "ok.mrc", np.arange(64, dtype=np.float32).reshape(4, 4, 4), 1.0)
    (tmp_path / "tail.mrc").write_bytes((tmp_path / "ok.mrc").read_bytes() + b"\0" * 100)
    with pytest.raises(MrcError, match="announces"):
        read_mrc(tmp_path / "tail.mrc")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        out, _ = read_mrc(tmp_path / "tail.mrc", permissive=True)
    assert out.shape == (4, 4, 4)
    assert main(["info", str(tmp_path / "ok.mrc")]) == 0
    assert "31.5 ± 18.473" in capsys.readouterr().out  # chunked statistics: mean and std of 0 … 63


# 7. stack or volume
def _mrc(path, shape, ispg, cell=True):
    with mrcfile.new(path, overwrite=True) as m:
        m.set_data(np.zeros(shape, np.float32))
        m.header.ispg = ispg
        if cell:
            m.voxel_size = 2.0
        else:
            m.header.cella = (0.0, 0.0, 0.0)


def test_stack_or_volume_rule(tmp_path, capsys):
    from cryoforge.io.mrc import read_mrc

    _mrc(tmp_path / "cube.mrc", (30, 30, 30), 0)
    _mrc(tmp_path / "thin.mrc", (7, 32, 32), 1, cell=False)
    _mrc(tmp_path / "tomo.mrc", (12, 40, 40), 1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert read_mrc(tmp_path / "cube.mrc")[1].layout == "volume"
        assert read_mrc(tmp_path / "thin.mrc")[1].layout == "stack"
        assert read_mrc(tmp_path / "tomo.mrc")[1].layout == "volume"
        assert read_mrc(tmp_path / "cube.mrc", layout="stack")[1].layout == "stack"
        assert read_mrc(tmp_path / "thin.mrc", layout="volume")[1].layout == "volume"
    assert main(["info", str(tmp_path / "thin.mrc"), "--as", "volume"]) == 0
    assert "volume (Z, Y, X)" in capsys.readouterr().out


def test_reader_override(tmp_path):
    from napari_cryoforge._reader import read_mrc_layers

    _mrc(tmp_path / "thin.mrc", (7, 32, 32), 1, cell=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        auto = read_mrc_layers(str(tmp_path / "thin.mrc"))[0][1]
        forced = read_mrc_layers(str(tmp_path / "thin.mrc"), layout="volume")[0][1]
    assert auto["axis_labels"] == ("particle", "y", "x") and forced["axis_labels"] == ("z", "y", "x")


def _rss_mib() -> float:
    from pathlib import Path

    return int(Path("/proc/self/status").read_text().split("VmRSS:")[1].split()[0]) / 1024


def test_a_stored_stack_reads_rows_without_keeping_them(tmp_path):
    """Rows as mrcfile reads them (× scale + offset), slices stay on disk, and reading every row of a 48 MiB
    float16 stack one by one leaves the resident memory where it was (the map's pages released)."""
    from cryoforge.io.mrc import StoredStack, release_pages

    data = np.random.default_rng(0).normal(size=(1536, 128, 128)).astype(np.float16)
    write_mrc(tmp_path / "s.mrcs", data, 2.0, stack=True, dtype="float16")
    with mrcfile.open(tmp_path / "s.mrcs") as m:
        theirs = np.asarray(m.data[5:8], np.float32)
    mapped, _ = read_mrc(tmp_path / "s.mrcs", mmap=True, layout="stack")
    stack = StoredStack(mapped, scale=2.0, offset=1.0)
    view = stack[4:10]
    assert isinstance(view, StoredStack) and view.shape == (6, 128, 128) and len(stack) == 1536
    np.testing.assert_array_equal(view[np.arange(1, 4)], theirs * 2 + 1)
    np.testing.assert_array_equal(np.asarray(stack[5:8]), theirs * 2 + 1)
    before = _rss_mib()
    total = sum(float(stack[i].sum()) for i in range(len(stack)))
    assert np.isfinite(total) and _rss_mib() - before < 24  # 48 MiB read (47 MiB stayed without the release); the rows' pages did not stay
    release_pages(np.zeros(3))  # an array in memory: nothing to release
