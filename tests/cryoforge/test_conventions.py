"""Tests of :mod:`cryoforge.conventions`."""

import math

import numpy as np
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
