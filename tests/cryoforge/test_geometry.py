"""Tests of :mod:`cryoforge.geometry`."""

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from cryoforge.conventions import (
    random_rotations,
    rotation_about_axis,
)
from cryoforge.geometry import rotate_volume, transform_volumes


def _smooth_volume(n=24, seed=0):
    g = torch.Generator().manual_seed(seed)
    z, y, x = torch.meshgrid(*[torch.arange(n, dtype=torch.float32) - n // 2] * 3, indexing="ij")
    vol = torch.zeros(n, n, n)
    for _ in range(6):
        c = (torch.rand(3, generator=g) - 0.5) * n * 0.4
        vol += torch.exp(-((x - c[0]) ** 2 + (y - c[1]) ** 2 + (z - c[2]) ** 2) / (2 * 2.5**2))
    return vol


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


@pytest.mark.parametrize("shape", [(16, 16, 16), (8, 12, 20), (2, 5, 7)])
def test_affine_grid_equals_torchs_with_its_gradient(shape):
    """The cached-grid product gives torch's ``affine_grid`` (align_corners=True), values and gradient in θ."""
    import torch.nn.functional as F

    from cryoforge.geometry import affine_grid

    theta = torch.randn(5, 3, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(1), requires_grad=True)
    ours, theirs = affine_grid(theta, shape), F.affine_grid(theta, [5, 1, *shape], align_corners=True)
    assert ours.shape == theirs.shape == (5, *shape, 3)
    assert torch.allclose(ours, theirs, atol=1e-14)
    g_ours, = torch.autograd.grad((ours ** 3).sum(), theta)
    g_theirs, = torch.autograd.grad((theirs ** 3).sum(), theta)
    assert torch.allclose(g_ours, g_theirs, atol=1e-10)
