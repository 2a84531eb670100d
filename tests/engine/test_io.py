"""MRC, STAR and checkpoint I/O: round trips, permissive reading, clear errors for bad files."""

import warnings

import mrcfile
import numpy as np
import pytest
import torch

from cryoforge.conventions import euler_zyz_to_matrix, random_rotations
from cryoforge.ctf import CTFParams
from cryoforge.io import (
    CheckpointError,
    MrcError,
    ParticleMetadata,
    load_checkpoint,
    read_mrc,
    read_particles_star,
    save_checkpoint,
    write_mrc,
    write_particles_star,
)
from cryoforge.io.mrc import MrcWarning


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


def test_star_round_trip(tmp_path):
    n = 7
    rots = random_rotations(n, seed=3).numpy()
    shifts = np.random.default_rng(0).normal(size=(n, 2)).astype(np.float32) * 3
    ctf = CTFParams(defocus_u=np.linspace(9000, 15000, n), defocus_v=np.linspace(8800, 14800, n),
                    defocus_angle=np.full(n, 33.0), voltage=np.full(n, 300.0), cs=np.full(n, 2.7),
                    amplitude_contrast=np.full(n, 0.07), bfactor=np.zeros(n), phase_shift=np.zeros(n))
    names = [f"{i + 1:06d}@stack.mrcs" for i in range(n)]
    meta = ParticleMetadata(names, rots, shifts, ctf, pixel_size=1.23)
    write_particles_star(tmp_path / "p.star", meta)
    back = read_particles_star(tmp_path / "p.star")
    assert back.image_names == names and back.pixel_size == pytest.approx(1.23)
    np.testing.assert_allclose(back.rotations, rots, atol=1e-5)
    np.testing.assert_allclose(back.shifts, shifts, atol=1e-5)
    for name in CTFParams.field_names():
        np.testing.assert_allclose(getattr(back.ctf, name), getattr(ctf, name), rtol=1e-6)
    text = (tmp_path / "p.star").read_text()
    assert "data_optics" in text and "_rlnAngleTilt" in text and "_rlnOriginXAngst" in text


def test_star_relion30_origins_in_pixels(tmp_path):
    (tmp_path / "r30.star").write_text(
        "data_\nloop_\n_rlnImageName\n_rlnAngleRot\n_rlnAngleTilt\n_rlnAnglePsi\n_rlnOriginX\n_rlnOriginY\n"
        "1@a.mrcs 10 20 30 2 -1\n"
    )
    with pytest.raises(ValueError, match="pixel size"):
        read_particles_star(tmp_path / "r30.star")
    m = read_particles_star(tmp_path / "r30.star", pixel_size=1.5)
    np.testing.assert_allclose(m.shifts, [[3.0, -1.5]])
    np.testing.assert_allclose(m.rotations[0], euler_zyz_to_matrix(10.0, 20.0, 30.0).numpy(), atol=1e-6)


def test_reads_cryodrgn_relion31_star(shared_dir):
    m = read_particles_star(shared_dir / "cryodrgn" / "relion31.star")
    t = m.table
    assert len(m) == len(t) > 0
    assert m.pixel_size == pytest.approx(float(t["rlnImagePixelSize"].iloc[0]))
    i = 3
    expected = euler_zyz_to_matrix(*(float(t[c].iloc[i]) for c in ("rlnAngleRot", "rlnAngleTilt", "rlnAnglePsi")))
    np.testing.assert_allclose(m.rotations[i], expected.numpy(), atol=1e-6)
    np.testing.assert_allclose(m.ctf.voltage, 300.0)  # merged from the optics table
    np.testing.assert_allclose(m.ctf.defocus_u[i], t["rlnDefocusU"].iloc[i], rtol=1e-6)


def test_checkpoint_round_trip_and_kind(tmp_path):
    net = torch.nn.Linear(3, 2)
    p = save_checkpoint(tmp_path / "c.pt", "wgan3d", {"size": 32}, {"generator": net.state_dict()},
                        metrics={"loss": 0.5})
    ck = load_checkpoint(p, kind="wgan3d")
    assert ck["config"] == {"size": 32} and ck["metrics"]["loss"] == 0.5
    net2 = torch.nn.Linear(3, 2)
    net2.load_state_dict(ck["state_dicts"]["generator"])
    assert torch.equal(net2.weight, net.weight)
    with pytest.raises(CheckpointError, match="is a 'wgan3d' checkpoint, but a 'gumnet' checkpoint is needed"):
        load_checkpoint(p, kind="gumnet")


class Evil:
    """An arbitrary pickled object: weights_only loading must refuse it."""


def test_foreign_and_unsafe_checkpoints_are_refused(tmp_path):
    torch.save({"weights": torch.zeros(2)}, tmp_path / "plain.pt")
    with pytest.raises(CheckpointError, match="not a cryoforge checkpoint"):
        load_checkpoint(tmp_path / "plain.pt")

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.save({"format": "cryoforge-checkpoint", "obj": Evil()}, tmp_path / "evil.pt")
    with pytest.raises(CheckpointError, match="cannot be loaded safely"):
        load_checkpoint(tmp_path / "evil.pt")
    (tmp_path / "junk.pt").write_bytes(b"\x00" * 100)
    with pytest.raises(CheckpointError):
        load_checkpoint(tmp_path / "junk.pt")


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


def test_checkpoint_of_the_right_kind_with_missing_keys_is_a_clear_error(tmp_path, capsys):
    from cryoforge.cli import main

    torch.save({"format": "cryoforge-checkpoint", "format_version": 1, "kind": "wgan3d", "config": {},
                "state_dicts": {}, "metrics": {}, "extra": {}}, tmp_path / "g.pt")
    ck = load_checkpoint(tmp_path / "g.pt")
    with pytest.raises(CheckpointError, match="g.pt: its config has no 'latent_dim'"):
        ck["config"]["latent_dim"]
    assert main(["movie", str(tmp_path / "g.pt"), "--from", "0", "--to", "1", "--out",
                 str(tmp_path / "m.gif")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "a damaged checkpoint, or one written by other code" in err
    save_checkpoint(tmp_path / "again.pt", ck["kind"], ck["config"], ck["state_dicts"], ck["metrics"], ck["extra"])
    assert load_checkpoint(tmp_path / "again.pt")["kind"] == "wgan3d"  # plain dicts again: loads with weights_only
