"""Tests of :mod:`cryoforge.tomograms.extract`: sub-voxel centring against the library and the truth, edges,
binning, the files written and their reading by other tools."""

import numpy as np
import pytest
import starfile
import torch

from cryoforge.io import read_mrc
from cryoforge.io.tomo_particles import TomoParticles, read_particle_list
from cryoforge.jobs import drive
from cryoforge.tomograms.extract import crop_subtomograms, extract_job

SHAPE = (40, 96, 80)  # (Z, Y, X)
VOXEL = 10.0


def _blob(n=12, sigma=2.0):
    ax = torch.arange(n, dtype=torch.float64) - n // 2
    z, y, x = torch.meshgrid(ax, ax, ax, indexing="ij")
    return torch.exp(-(x ** 2 + 1.5 * y ** 2 + 2 * z ** 2) / (2 * sigma ** 2))


def _tomogram(centres_xyz):
    """Gaussian blobs at (fractional) voxel positions, evaluated analytically: exact truth for any sub-voxel offset."""
    z, y, x = torch.meshgrid(*(torch.arange(s, dtype=torch.float64) for s in SHAPE), indexing="ij")
    vol = torch.zeros(SHAPE, dtype=torch.float64)
    for cx, cy, cz in centres_xyz:
        vol += torch.exp(-((x - cx) ** 2 + 1.5 * (y - cy) ** 2 + 2 * (z - cz) ** 2) / (2 * 2.0 ** 2))
    return vol.float().numpy()


def test_crop_matches_torch_subpixel_crop_and_centres_the_particle():
    from torch_subpixel_crop import subpixel_crop_3d

    rng = np.random.default_rng(0)
    vol = rng.normal(size=SHAPE).astype(np.float32)
    zyx = rng.uniform([10, 10, 10], [30, 86, 70], (20, 3))
    ours, edge = crop_subtomograms(vol, zyx, 16)
    lib = subpixel_crop_3d(torch.from_numpy(vol - vol.mean()), torch.from_numpy(zyx).float(), 16) + vol.mean()
    assert float((ours - lib).abs().max()) < 1e-4 and not edge.any()
    xyz = np.array([[30.37, 50.8, 20.25]])
    box, _ = crop_subtomograms(_tomogram(xyz), xyz[:, ::-1], 12)
    np.testing.assert_allclose(box[0].numpy(), _blob().numpy(), atol=0.02)  # the blob sits on voxel n // 2


def test_extract_job_edges_binning_and_files(tmp_path):
    xyz = np.array([[40.0, 48.0, 20.0], [20.3, 30.6, 12.2], [2.0, 48.0, 20.0]])  # the last near the x = 0 face
    vol = _tomogram(xyz)
    rot = np.stack([np.eye(3)] * 3)
    parts = TomoParticles.from_voxels(xyz, VOXEL, SHAPE, rot, "TS_1")
    res = drive(extract_job(vol, VOXEL, parts, 12, tilt_range=(-60, 60), defocus=3e4, out_dir=tmp_path / "ex"))
    assert res.subtomograms.shape == (3, 12, 12, 12) and res.voxel_size == VOXEL
    assert res.edge_fraction[0] == 0 and res.edge_fraction[1] == 0 and 0.3 < res.edge_fraction[2] < 0.4  # 4 of 12
    np.testing.assert_allclose(res.subtomograms[1], _blob().numpy(), atol=0.02)
    assert res.mask is not None and res.mask.shape == (12, 12, 12) and 0.5 < res.mask.mean() < 0.8
    stack, info = read_mrc(tmp_path / "ex" / "subtomograms.mrcs")
    assert stack.shape == (3, 12, 12, 12) and info.voxel_size[0] == pytest.approx(VOXEL)
    star = starfile.read(tmp_path / "ex" / "subtomograms.star", always_dict=True)["particles"]
    assert star["rlnImageName"].tolist()[0] == "000001@subtomograms.mrcs"
    assert star["rlnDefocusU"].tolist() == [3e4] * 3 and star["cfEdgeFraction"].tolist()[2] > 0.3
    back = read_particle_list(tmp_path / "ex" / "subtomograms.star")
    np.testing.assert_allclose(back.positions, parts.positions, atol=1e-4)
    binned = drive(extract_job(vol, VOXEL, parts, 6, bin=2))
    assert binned.subtomograms.shape == (3, 6, 6, 6) and binned.voxel_size == 2 * VOXEL
    assert binned.subtomograms[0].argmax() == np.ravel_multi_index((3, 3, 3), (6, 6, 6))


def test_extract_refuses_what_it_cannot_do():
    vol = np.zeros(SHAPE, np.float32)
    far = TomoParticles.from_voxels([[200.0, 10, 10]], VOXEL, SHAPE)
    with pytest.raises(Exception, match="more than half a box outside"):
        drive(extract_job(vol, VOXEL, far, 12))
    two = TomoParticles.from_voxels([[10.0, 10, 10], [20, 20, 20]], VOXEL, SHAPE, tomograms=["a", "b"])
    with pytest.raises(Exception, match="2 tomograms"):
        drive(extract_job(vol, VOXEL, two, 12))


def test_extract_command_writes_a_folder_other_tools_read(tmp_path, capsys):
    from cryoforge.cli import main
    from cryoforge.io import write_mrc

    xyz = np.array([[40.0, 48.0, 20.0], [20.3, 30.6, 12.2]])
    write_mrc(tmp_path / "TS_3.mrc", _tomogram(xyz), VOXEL)
    np.savetxt(tmp_path / "picks.txt", xyz)
    (tmp_path / "TS_3.tlt").write_text("\n".join(str(a) for a in range(-54, 55, 3)))
    assert main(["extract", str(tmp_path / "TS_3.mrc"), str(tmp_path / "picks.txt"), "--box", "12",
                 "--tlt", str(tmp_path / "TS_3.tlt"), "--defocus", "3", "--out", str(tmp_path / "ex")]) == 0
    assert "wrote 2 subtomograms of 12³ at 10 Å" in capsys.readouterr().out
    star = starfile.read(tmp_path / "ex" / "subtomograms.star", always_dict=True)
    assert (star["particles"]["rlnTomoName"] == "TS_3").all() and star["particles"]["rlnDefocusU"].tolist() == [3e4] * 2
    mask, _ = read_mrc(tmp_path / "ex" / "mask.mrc")
    assert mask.shape == (12, 12, 12)
    assert main(["extract", str(tmp_path / "TS_3.mrc"), str(tmp_path / "picks.txt"), "--box", "12",
                 "--tilt-range", "60", "-60", "--out", str(tmp_path / "ex2")]) == 2
    assert "MIN < MAX" in capsys.readouterr().err and not (tmp_path / "ex2").exists()


def test_extract_picks_this_tomograms_particles_from_a_list_of_several(tmp_path, capsys):
    from cryoforge.cli import main
    from cryoforge.io import write_mrc
    from cryoforge.io.tomo_particles import write_relion5

    xyz = np.array([[40.0, 48.0, 20.0], [20.3, 30.6, 12.2], [60.0, 20.0, 20.0]])
    write_mrc(tmp_path / "TS_3.mrc", _tomogram(xyz), VOXEL)
    parts = TomoParticles.from_voxels(xyz, VOXEL, SHAPE, None, ["TS_3", "TS_4", "TS_3"])
    write_relion5(tmp_path / "all.star", parts, VOXEL)
    assert main(["extract", str(tmp_path / "TS_3.mrc"), str(tmp_path / "all.star"), "--box", "12",
                 "--out", str(tmp_path / "ex")]) == 0
    assert "2 of the list's particles are in TS_3" in capsys.readouterr().out
    assert len(read_particle_list(tmp_path / "ex" / "subtomograms.star")) == 2
    assert main(["extract", str(tmp_path / "TS_3.mrc"), str(tmp_path / "all.star"), "--name", "TS_9",
                 "--out", str(tmp_path / "ex2")]) == 2
    assert "holds particles of 2 tomograms (TS_3, TS_4)" in capsys.readouterr().err
