"""Gum-Net's building blocks: DCT spectral pooling, the spatial transformer, wedge imputation, the network."""

import numpy as np
import pytest
import torch
from scipy.fft import dctn, idctn

from cryoforge.align.dct import SpectralPool3d, spectral_pool_matrix
from cryoforge.align.gumnet import GumNet, GumNetConfig, gumnet_loss, pool_sizes
from cryoforge.align.warp import impute_wedge, params_to_pose, warp_inverse
from cryoforge.conventions import random_rotations
from cryoforge.geometry import transform_volumes
from cryoforge.sim.density import model_to_density
from cryoforge.sim.phantoms import phantom_model


def _reference_pool(x: np.ndarray, size: int, keep: int) -> np.ndarray:
    """scipy: orthonormal DCT → crop to size³ → zero beyond keep → inverse DCT, constant-preserving scale."""
    c = dctn(x, norm="ortho", axes=(-3, -2, -1))[..., :size, :size, :size].copy()
    c[..., keep:, :, :] = 0
    c[..., :, keep:, :] = 0
    c[..., :, :, keep:] = 0
    return idctn(c, norm="ortho", axes=(-3, -2, -1)) * (size / x.shape[-1]) ** 1.5


def test_dct_pooling_equals_reference_dct_crop_idct():
    x = np.random.default_rng(0).normal(size=(2, 3, 30, 30, 30))
    out = SpectralPool3d(30, 26, 22)(torch.from_numpy(x).float()).numpy()
    np.testing.assert_allclose(out, _reference_pool(x, 26, 22), atol=2e-4)


def test_dct_pooling_keeps_constants_and_gradchecks():
    pool = SpectralPool3d(6, 4, 3)
    np.testing.assert_allclose(pool(torch.full((1, 1, 6, 6, 6), 2.5)).numpy(), 2.5, atol=1e-5)
    x = torch.randn(1, 2, 6, 6, 6, dtype=torch.float64, requires_grad=True)
    pool.matrix = spectral_pool_matrix(6, 4, 3)  # float64 for gradcheck
    assert torch.autograd.gradcheck(pool, (x,))


def test_pool_sizes_match_the_paper_at_32():
    assert pool_sizes(32) == [(30, 26, 22), (24, 18, 15), (16, 12, 10), (10, 8, 7)]
    with pytest.raises(ValueError, match="at least 28"):
        pool_sizes(20)


def _map(n=32):
    """A smooth asymmetric test map (two trilinear resamplings of sharper maps lose a few % correlation)."""
    from cryoforge.fourier import gaussian_filter

    return gaussian_filter(model_to_density(phantom_model("multiblob", 1), n, 6.0).float(), 1.5)


def test_stn_identity_returns_input():
    v = _map()[None]
    for kind in ("zyz", "axis_angle"):
        rot, t = params_to_pose(torch.full((1, 6), 0.5), 32, kind)
        assert torch.allclose(rot, torch.eye(3)[None], atol=1e-6) and torch.allclose(t, torch.zeros(1, 3), atol=1e-6)
    np.testing.assert_allclose(warp_inverse(v, rot, t).numpy(), v.numpy(), atol=1e-5)


def test_stn_undoes_a_known_rigid_transform():
    v = _map()[None]
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


@pytest.mark.parametrize("pooling,correlation", [("dct", "siamese"), ("max", "siamese"), ("avg", "single")])
def test_gumnet_shapes_and_ablations(pooling, correlation):
    net = GumNet(GumNetConfig.preset("tiny", pooling=pooling, correlation=correlation))
    p = net(torch.randn(2, 32, 32, 32), torch.randn(2, 32, 32, 32))
    assert p.shape == (2, 6) and torch.allclose(p, torch.full_like(p, 0.5))  # starts at the identity
    assert (net.head_ba is None) == (correlation == "single")


def test_gumnet_loss_decreases_on_a_tiny_set():
    torch.manual_seed(0)
    v = _map()
    rot = random_rotations(4, 5)
    small = torch.eye(3) + 0.25 * (rot - rot.transpose(1, 2))  # ~15-20° rotations
    small = torch.linalg.qr(small)[0] * torch.sign(torch.diagonal(torch.linalg.qr(small)[1], dim1=1, dim2=2))[:, None]
    s_a = v.expand(4, 32, 32, 32)
    s_b = transform_volumes(s_a, small, torch.tensor([[1.0, 0, 0]] * 4))
    net = GumNet(GumNetConfig.preset("tiny"))
    opt = torch.optim.Adam(net.parameters(), 1e-3)
    mask = torch.ones(32, 32, 32)
    losses = []
    for _ in range(12):
        loss = gumnet_loss(net, s_a, s_b, mask)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss))
    assert losses[-1] < losses[0] - 0.01


def test_gumnet_bad_inputs():
    net = GumNet(GumNetConfig.preset("tiny"))
    with pytest.raises(ValueError, match="same shape"):
        net(torch.randn(1, 32, 32, 32), torch.randn(1, 30, 30, 30))
    with pytest.raises(ValueError, match="cubic"):
        net(torch.randn(1, 32, 32, 30), torch.randn(1, 32, 32, 30))
    with pytest.raises(ValueError, match="built for 32"):
        net(torch.randn(1, 40, 40, 40), torch.randn(1, 40, 40, 40))
