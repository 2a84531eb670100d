"""Tests of :mod:`cryoforge.io.tomo_particles`: each format's convention, round trips, and starfile's reading."""

import numpy as np
import pandas as pd
import pytest
import starfile

from cryoforge.conventions import euler_zyz_to_matrix, random_rotations, rotation_angle_deg
from cryoforge.io.tomo_particles import (
    ParticleListError,
    TomoParticles,
    dynamo_to_matrix,
    matrix_to_dynamo,
    read_particle_list,
    tomogram_centre,
    write_dynamo,
    write_relion5,
)

SHAPE = (64, 200, 180)  # (Z, Y, X)
VOXEL = 10.0


def _rotations(n, seed):
    """Random rotations, orthonormal to float64 precision (angles between float32 matrices have a ~0.02° floor)."""
    u, _, vt = np.linalg.svd(random_rotations(n, seed).double().numpy())
    return u @ vt


def _particles(n=25, seed=0):
    rng = np.random.default_rng(seed)
    xyz = rng.uniform([5, 5, 5], [175, 195, 59], (n, 3))
    rot = _rotations(n, seed)
    table = pd.DataFrame({"rlnClassNumber": rng.integers(1, 4, n)})
    return TomoParticles.from_voxels(xyz, VOXEL, SHAPE, rot, "TS_01", table)


def test_dynamo_angles_match_dynamo_and_relion():
    # Dynamo's own matrix for (tdrot, tilt, narot) = (30, 60, 75) aligns the particle onto the reference: ours is its
    # transpose; and a pose both programs agree on (the eulerangles package's test) is one rotation here
    dynamo_matrix = np.array([[-0.0173, -0.5477, 0.8365], [0.9012, -0.3709, -0.2241], [0.4330, 0.7500, 0.5000]])
    np.testing.assert_allclose(dynamo_to_matrix(30, 60, 75).T, dynamo_matrix, atol=1e-4)
    relion = euler_zyz_to_matrix(137.7, 1.1777, 42.727).double().numpy()
    np.testing.assert_allclose(dynamo_to_matrix(-47.273, 1.1777, -132.3), relion, atol=1e-4)
    rot = _rotations(200, 3)
    back = dynamo_to_matrix(*matrix_to_dynamo(rot).T)
    assert float(rotation_angle_deg(back, rot).max()) < 1e-4
    lock = dynamo_to_matrix(20.0, 0.0, 15.0)  # gimbal lock: only tdrot + narot is defined
    assert float(rotation_angle_deg(dynamo_to_matrix(*matrix_to_dynamo(lock)), lock)) < 1e-6


def test_relion5_composes_the_subtomogram_pose_and_origin_as_relion(tmp_path):
    rot_p, rot_s = (37.0, 71.0, -12.0), (110.0, 40.0, 5.0)
    origin = np.array([3.0, -2.0, 1.5])  # Å, in the subtomogram frame
    centred = np.array([120.0, -45.0, 33.0])
    df = pd.DataFrame({"rlnTomoName": ["TS_07"], "rlnCenteredCoordinateXAngst": [centred[0]],
                       "rlnCenteredCoordinateYAngst": [centred[1]], "rlnCenteredCoordinateZAngst": [centred[2]],
                       "rlnAngleRot": [rot_p[0]], "rlnAngleTilt": [rot_p[1]], "rlnAnglePsi": [rot_p[2]],
                       "rlnTomoSubtomogramRot": [rot_s[0]], "rlnTomoSubtomogramTilt": [rot_s[1]],
                       "rlnTomoSubtomogramPsi": [rot_s[2]], "rlnOriginXAngst": [origin[0]],
                       "rlnOriginYAngst": [origin[1]], "rlnOriginZAngst": [origin[2]], "rlnClassNumber": [2]})
    starfile.write({"particles": df}, tmp_path / "p.star")
    p = read_particle_list(tmp_path / "p.star")
    a_sub = euler_zyz_to_matrix(*rot_s).double().numpy()
    a_part = euler_zyz_to_matrix(*rot_p).double().numpy()
    # RELION's ParticleSet: getMatrix3x3 = A_subtomogram · A_particle; getPosition = p − A_subtomogram · origin
    np.testing.assert_allclose(p.rotations[0], a_sub @ a_part, atol=1e-9)
    np.testing.assert_allclose(p.positions[0], centred - a_sub @ origin, atol=1e-9)
    assert p.tomograms[0] == "TS_07" and p.table["rlnClassNumber"].tolist() == [2]
    # written back with the subtomogram pose and origin folded in, it is the same particle
    write_relion5(tmp_path / "q.star", p, VOXEL)
    q = read_particle_list(tmp_path / "q.star")
    np.testing.assert_allclose(q.positions, p.positions, atol=1e-5)
    assert float(rotation_angle_deg(q.rotations, p.rotations).max()) < 1e-4


def test_relion5_written_is_read_by_starfile_as_relion_columns(tmp_path):
    parts = _particles()
    write_relion5(tmp_path / "p.star", parts, VOXEL)
    blocks = starfile.read(tmp_path / "p.star", always_dict=True)
    assert float(blocks["optics"]["rlnTomoTiltSeriesPixelSize"].iloc[0]) == VOXEL
    df = blocks["particles"]
    for col in ("rlnTomoName", "rlnCenteredCoordinateXAngst", "rlnAngleRot", "rlnAngleTilt", "rlnAnglePsi",
                "rlnOpticsGroup", "rlnClassNumber"):
        assert col in df
    np.testing.assert_allclose(df["rlnCenteredCoordinateZAngst"].to_numpy(), parts.positions[:, 2], atol=1e-5)
    again = read_particle_list(tmp_path / "p.star")
    np.testing.assert_allclose(again.positions, parts.positions, atol=1e-5)
    assert float(rotation_angle_deg(again.rotations, parts.rotations).max()) < 1e-4
    assert (again.tomograms == "TS_01").all() and again.table["rlnClassNumber"].tolist() == \
        parts.table["rlnClassNumber"].tolist()


def test_relion4_coordinates_and_origins_in_voxels(tmp_path):
    parts = _particles(8)
    xyz = parts.voxels(VOXEL, SHAPE)
    shift = np.array([2.0, -1.0, 0.5])  # voxels; RELION subtracts the origin from the coordinate
    angles = np.stack([np.zeros(8), np.zeros(8), np.zeros(8)], 1)
    df = pd.DataFrame({"rlnTomoName": "TS_01", "rlnCoordinateX": xyz[:, 0] + shift[0],
                       "rlnCoordinateY": xyz[:, 1] + shift[1], "rlnCoordinateZ": xyz[:, 2] + shift[2],
                       "rlnOriginXAngst": shift[0] * VOXEL, "rlnOriginYAngst": shift[1] * VOXEL,
                       "rlnOriginZAngst": shift[2] * VOXEL, "rlnAngleRot": angles[:, 0],
                       "rlnAngleTilt": angles[:, 1], "rlnAnglePsi": angles[:, 2]})
    optics = pd.DataFrame({"rlnOpticsGroup": [1], "rlnImagePixelSize": [VOXEL]})
    starfile.write({"optics": optics, "particles": df}, tmp_path / "r4.star")
    with pytest.raises(ParticleListError, match="tomogram's shape"):
        read_particle_list(tmp_path / "r4.star")
    p = read_particle_list(tmp_path / "r4.star", shape=SHAPE)  # the voxel size comes from the optics table
    np.testing.assert_allclose(p.positions, parts.positions, atol=1e-4)
    assert np.allclose(p.rotations, np.eye(3))


def test_dynamo_table_round_trip_and_tomogram_numbers(tmp_path):
    parts = _particles(30)
    parts.tomograms[10:] = "TS_02"
    write_dynamo(tmp_path / "p.tbl", parts, VOXEL, SHAPE)
    tbl = np.loadtxt(tmp_path / "p.tbl")
    assert tbl.shape == (30, 35) and set(tbl[:, 19]) == {1.0, 2.0}
    back = read_particle_list(tmp_path / "p.tbl", VOXEL, SHAPE)
    np.testing.assert_allclose(back.positions, parts.positions, atol=1e-3)
    assert float(rotation_angle_deg(back.rotations, parts.rotations).max()) < 1e-3
    assert back.tomograms[0] == "1" and back.tomograms[-1] == "2"
    # Dynamo's shifts add to x y z
    tbl[:, 3] = 1.5
    tbl[:, 23] -= 1.5
    np.savetxt(tmp_path / "s.tbl", tbl)
    np.testing.assert_allclose(read_particle_list(tmp_path / "s.tbl", VOXEL, SHAPE).positions, back.positions,
                               atol=1e-3)


def test_text_lists_the_centre_and_clear_errors(tmp_path):
    (tmp_path / "p.txt").write_text("# x y z\n90 100 32\n0 0 0\n")
    p = read_particle_list(tmp_path / "p.txt", VOXEL, SHAPE)
    np.testing.assert_allclose(tomogram_centre(SHAPE), [90, 100, 32])
    np.testing.assert_allclose(p.positions, [[0, 0, 0], [-900, -1000, -320]])
    assert p.tomograms[0] == "p" and np.allclose(p.rotations, np.eye(3))
    with pytest.raises(ParticleListError, match="voxel size"):
        read_particle_list(tmp_path / "p.txt", shape=SHAPE)
    (tmp_path / "bad.txt").write_text("1 2\n")
    with pytest.raises(ParticleListError, match="three numbers"):
        read_particle_list(tmp_path / "bad.txt", VOXEL, SHAPE)
    (tmp_path / "p.csv").write_text("1,2,3\n")
    with pytest.raises(ParticleListError, match=r"\.star \(RELION\), \.tbl \(Dynamo\)"):
        read_particle_list(tmp_path / "p.csv")
    (tmp_path / "nan.txt").write_text("1 2 nan\n")
    with pytest.raises(ParticleListError, match="NaN"):
        read_particle_list(tmp_path / "nan.txt", VOXEL, SHAPE)
    (tmp_path / "none.star").write_text("data_particles\n\nloop_\n_rlnAngleRot #1\n10\n")
    with pytest.raises(ParticleListError, match="no particle"):
        read_particle_list(tmp_path / "none.star")
