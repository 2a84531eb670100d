"""Tests of :mod:`cryoforge.align.warp`."""

import numpy as np
import pytest
import torch

from cryoforge.align.warp import impute_wedge, params_to_pose, warp_inverse
from cryoforge.conventions import random_rotations
from cryoforge.geometry import transform_volumes
from tests.helpers import phantom_map


def test_stn_identity_returns_input():
    v = phantom_map()[None]
    for kind in ("zyz", "axis_angle"):
        rot, t = params_to_pose(torch.full((1, 6), 0.5), 32, kind)
        assert torch.allclose(rot, torch.eye(3)[None], atol=1e-6) and torch.allclose(t, torch.zeros(1, 3), atol=1e-6)
    np.testing.assert_allclose(warp_inverse(v, rot, t).numpy(), v.numpy(), atol=1e-5)


def test_stn_undoes_a_known_rigid_transform():
    v = phantom_map()[None]
    rot = random_rotations(1, 3)
    t = torch.tensor([[2.5, -1.0, 3.0]])
    moved = transform_volumes(v, rot, t)
    back = warp_inverse(moved, rot, t)
    inner = (slice(None), slice(6, -6), slice(6, -6), slice(6, -6))
    c = np.corrcoef(back[inner].flatten().numpy(), v[inner].flatten().numpy())[0, 1]
    assert c > 0.995
    wrong = warp_inverse(moved, random_rotations(1, 4), t)
    assert np.corrcoef(wrong[inner].flatten().numpy(), v[inner].flatten().numpy())[0, 1] < c - 0.05


def test_rotation_vector_output_is_smooth_at_the_identity():
    """A small output change gives a small rotation with the rotation vector; ZYZ at tilt 0 it does not."""
    from cryoforge.conventions import rotation_angle_deg

    p = torch.full((1, 6), 0.5)
    q = p.clone()
    q[0, 0] += 0.01  # 3.6° about x as a rotation vector; a rot change about z as ZYZ
    r0, _ = params_to_pose(p, 32, "axis_angle")
    r1, _ = params_to_pose(q, 32, "axis_angle")
    assert abs(float(rotation_angle_deg(r0, r1)) - 3.6) < 0.01
    assert torch.allclose(r1[0] @ torch.tensor([1.0, 0, 0]), torch.tensor([1.0, 0, 0]), atol=1e-6)  # about x
    with pytest.raises(ValueError, match="rotation must be"):
        params_to_pose(p, 32, "quaternion")


def test_imputation_takes_the_missing_region_from_s_a():
    a, b = torch.randn(1, 8, 8, 8), torch.randn(1, 8, 8, 8)
    np.testing.assert_allclose(impute_wedge(a, b, torch.ones(1, 8, 8, 8)).numpy(), b.numpy(), atol=1e-5)
    np.testing.assert_allclose(impute_wedge(a, b, torch.zeros(1, 8, 8, 8)).numpy(), a.numpy(), atol=1e-5)


def test_six_d_output_recovers_a_rotation_from_its_first_two_columns():
    """The 6-D representation: the first two columns of any rotation give it back; any 6 numbers give a rotation;
    Gum-Net's 6-D output starts at the identity."""
    from cryoforge.align.config import GumNetConfig
    from cryoforge.align.gumnet import GumNet
    from cryoforge.so3 import six_d_matrix

    rot = random_rotations(16, 5)
    six = torch.cat([rot[..., 0], rot[..., 1]], -1) * 3.0  # a scale the Gram–Schmidt step removes
    np.testing.assert_allclose(six_d_matrix(six).numpy(), rot.numpy(), atol=1e-5)
    any_six = six_d_matrix(torch.randn(64, 6, generator=torch.Generator().manual_seed(1)))
    np.testing.assert_allclose((any_six @ any_six.transpose(-1, -2)).numpy(), np.broadcast_to(np.eye(3), (64, 3, 3)),
                               atol=1e-5)
    np.testing.assert_allclose(torch.linalg.det(any_six).numpy(), 1.0, atol=1e-5)
    net = GumNet(GumNetConfig.preset("tiny", rotation="6d")).eval()
    v = phantom_map()[None]
    p = net(v, v)
    assert p.shape == (1, 9)
    r, t = params_to_pose(p, 32, "6d")
    assert torch.allclose(r, torch.eye(3)[None], atol=1e-6) and torch.allclose(t, torch.zeros(1, 3), atol=1e-6)
