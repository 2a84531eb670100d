"""Rotation and axis conventions (cryoforge.conventions), as property tests."""

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from cryoforge.conventions import (
    euler_zyz_to_matrix,
    frobenius_from_angle,
    is_rotation,
    matrix_to_euler_zyz,
    random_rotations,
    rotation_about_axis,
    rotation_angle_deg,
    rotation_frobenius,
)
from cryoforge.geometry import rotate_volume, transform_volumes

angle = st.floats(-180, 180, allow_nan=False)
tilt = st.floats(0, 180, allow_nan=False)


def relion_matrix(rot, tilt, psi):
    """RELION's Euler_angles2matrix written out element by element (the test's oracle)."""
    a, b, g = np.deg2rad([rot, tilt, psi])
    ca, sa, cb, sb, cg, sg = np.cos(a), np.sin(a), np.cos(b), np.sin(b), np.cos(g), np.sin(g)
    cc, cs, sc, ss = cb * ca, cb * sa, sb * ca, sb * sa
    return np.array([
        [cg * cc - sg * sa, cg * cs + sg * ca, -cg * sb],
        [-sg * cc - cg * sa, -sg * cs + cg * ca, sg * sb],
        [sc, ss, cb],
    ])


@given(angle, tilt, angle)
def test_euler_matches_relion_formula(rot, t, psi):
    m = euler_zyz_to_matrix(np.float64(rot), np.float64(t), np.float64(psi)).numpy()
    np.testing.assert_allclose(m, relion_matrix(rot, t, psi), atol=1e-12)


@given(angle, tilt, angle)
def test_euler_round_trip(rot, t, psi):
    m = euler_zyz_to_matrix(np.float64(rot), np.float64(t), np.float64(psi))
    back = euler_zyz_to_matrix(*matrix_to_euler_zyz(m).unbind(-1))
    np.testing.assert_allclose(back.numpy(), m.numpy(), atol=1e-9)


def test_euler_round_trip_at_gimbal_lock():
    for t in (0.0, 180.0):
        m = euler_zyz_to_matrix(np.float64(30.0), np.float64(t), np.float64(50.0))
        ang = matrix_to_euler_zyz(m)
        assert ang[0].item() == 0.0
        np.testing.assert_allclose(euler_zyz_to_matrix(*ang.unbind(-1)).numpy(), m.numpy(), atol=1e-12)


@given(angle, tilt, angle)
def test_euler_is_composition_of_axis_rotations(rot, t, psi):
    z, y = (0, 0, 1.0), (0, 1.0, 0)
    rz = lambda a: rotation_about_axis(torch.tensor(z, dtype=torch.float64), np.float64(a))  # noqa: E731
    ry = rotation_about_axis(torch.tensor(y, dtype=torch.float64), np.float64(t))
    expected = (rz(rot) @ ry @ rz(psi)).T
    np.testing.assert_allclose(euler_zyz_to_matrix(np.float64(rot), np.float64(t), np.float64(psi)).numpy(),
                               expected.numpy(), atol=1e-12)


@settings(max_examples=50)
@given(st.integers(0, 2**31 - 1))
def test_composition_and_distances(seed):
    r = random_rotations(3, seed, dtype=torch.float64)
    a, b, c = r
    assert is_rotation(r)
    # distances are invariant under composition: d(CA, CB) = d(A, B)
    np.testing.assert_allclose(rotation_angle_deg(c @ a, c @ b), rotation_angle_deg(a, b), atol=1e-6)
    # the Frobenius error follows from the angle: 2 sqrt(2) sin(θ/2)
    theta = rotation_angle_deg(a, b).item()
    np.testing.assert_allclose(rotation_frobenius(a, b).item(), frobenius_from_angle(theta), atol=1e-9)


def test_random_rotations_seeded_and_haar():
    r1, r2 = random_rotations(4000, seed=7), random_rotations(4000, seed=7)
    assert torch.equal(r1, r2)
    assert not torch.equal(r1, random_rotations(4000, seed=8))
    # Haar measure: E[R] = 0, and the rotation angle has density (1 - cos θ)/π -> mean π/2 + 2/π
    assert torch.abs(r1.double().mean(0)).max() < 0.05
    theta = torch.deg2rad(rotation_angle_deg(torch.eye(3), r1)).double()
    assert abs(theta.mean().item() - (math.pi / 2 + 2 / math.pi)) < 0.03


def test_plus_90_about_z_moves_x_to_y_in_zyx_array():
    n, c, d = 16, 8, 4
    vol = torch.zeros(n, n, n)
    vol[c, c, c + d] = 1.0  # feature at +x
    rz90 = rotation_about_axis((0, 0, 1.0), 90.0)
    np.testing.assert_allclose(rz90.numpy(), [[0, -1, 0], [1, 0, 0], [0, 0, 1]], atol=1e-7)
    out = rotate_volume(vol, rz90)
    assert out[c, c + d, c].item() == pytest.approx(1.0, abs=1e-5)  # now at +y
    assert out.sum().item() == pytest.approx(1.0, abs=1e-5)
    # and +90 about x takes +y to +z
    vol2 = torch.zeros(n, n, n)
    vol2[c, c + d, c] = 1.0
    out2 = rotate_volume(vol2, rotation_about_axis((1.0, 0, 0), 90.0))
    assert out2[c + d, c, c].item() == pytest.approx(1.0, abs=1e-5)


def _smooth_volume(n=24, seed=0):
    g = torch.Generator().manual_seed(seed)
    z, y, x = torch.meshgrid(*[torch.arange(n, dtype=torch.float32) - n // 2] * 3, indexing="ij")
    vol = torch.zeros(n, n, n)
    for _ in range(6):
        c = (torch.rand(3, generator=g) - 0.5) * n * 0.4
        vol += torch.exp(-((x - c[0]) ** 2 + (y - c[1]) ** 2 + (z - c[2]) ** 2) / (2 * 2.5**2))
    return vol


@settings(max_examples=15, deadline=None)
@given(st.integers(0, 2**31 - 1))
def test_rotate_then_rotate_back_returns_volume(seed):
    vol = _smooth_volume()
    r = random_rotations(1, seed)[0]
    back = rotate_volume(rotate_volume(vol, r), r.T)
    cc = torch.corrcoef(torch.stack([vol.flatten(), back.flatten()]))[0, 1]
    assert cc > 0.99


def test_right_angle_rotations_are_exact_and_batched():
    vol = _smooth_volume(16)
    rs = torch.stack([rotation_about_axis((0, 0, 1.0), 90.0), rotation_about_axis((0, 1.0, 0), 180.0)])
    out = transform_volumes(vol.expand(2, -1, -1, -1), rs)
    back = transform_volumes(out, rs.transpose(1, 2))
    # valid interior (a 90° turn about the centre n//2 keeps the lattice)
    np.testing.assert_allclose(back[:, 1:, 1:, 1:].numpy(), vol.expand(2, -1, -1, -1)[:, 1:, 1:, 1:].numpy(),
                               atol=1e-5)


def test_shift_is_in_xyz_voxels():
    n = 16
    vol = torch.zeros(n, n, n)
    vol[8, 8, 8] = 1
    out = transform_volumes(vol, shifts=(2.0, -1.0, 3.0))  # +2 x, -1 y, +3 z
    assert out[8 + 3, 8 - 1, 8 + 2].item() == pytest.approx(1.0)
