"""Tests of :mod:`cryoforge.align.gumnet`."""

import pytest
import torch

from cryoforge.align.config import GumNetConfig, pool_sizes
from cryoforge.align.gumnet import GumNet, gumnet_loss
from cryoforge.conventions import random_rotations
from cryoforge.geometry import transform_volumes
from tests.helpers import phantom_map


def test_pool_sizes_match_the_paper_at_32():
    assert pool_sizes(32) == [(30, 26, 22), (24, 18, 15), (16, 12, 10), (10, 8, 7)]
    with pytest.raises(ValueError, match="at least 28"):
        pool_sizes(20)


@pytest.mark.parametrize("pooling,correlation", [("dct", "siamese"), ("max", "siamese"), ("avg", "single")])
def test_gumnet_shapes_and_ablations(pooling, correlation):
    net = GumNet(GumNetConfig.preset("tiny", pooling=pooling, correlation=correlation))
    p = net(torch.randn(2, 32, 32, 32), torch.randn(2, 32, 32, 32))
    assert p.shape == (2, 6) and torch.allclose(p, torch.full_like(p, 0.5))  # starts at the identity
    assert (net.head_ba is None) == (correlation == "single")


def test_gumnet_loss_decreases_on_a_tiny_set():
    torch.manual_seed(0)
    v = phantom_map()
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
