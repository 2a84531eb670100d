"""Tests of :mod:`cryoforge.gan`."""

import pytest
import torch

from cryoforge.gan import gradient_penalty
from cryoforge.multicryogan.config import McganConfig
from cryoforge.multicryogan.model import Critic


class HalfSquare(torch.nn.Module):
    """D(x)_i = ½‖x_i‖², so ∇D(x)_i = x_i: the per-sample norms are known by hand."""

    def forward(self, x):
        return 0.5 * (x ** 2).flatten(1).sum(1)


def test_gradient_penalty_is_per_sample():
    g = torch.Generator().manual_seed(0)
    real, fake = torch.randn(4, 3, 3, 3, generator=g), torch.randn(4, 3, 3, 3, generator=g) * 0.1
    gp = gradient_penalty(HalfSquare(), real, fake, torch.Generator().manual_seed(5))
    eps = torch.rand(4, 1, 1, 1, generator=torch.Generator().manual_seed(5))
    x = eps * real + (1 - eps) * fake
    by_hand = ((x.flatten(1).norm(dim=1) - 1) ** 2).mean()
    whole_batch = (x.norm() - 1) ** 2
    assert gp.item() == pytest.approx(by_hand.item(), rel=1e-5)
    assert abs(gp.item() - whole_batch.item()) > 0.1


def test_gradient_penalty_is_per_sample_for_images():
    from cryoforge.gan import gradient_penalty

    torch.manual_seed(0)
    critic = Critic(McganConfig(box=16, cwidth=4), 16)
    real, fake = torch.randn(4, 16, 16), torch.randn(4, 16, 16)
    got = gradient_penalty(critic, real, fake, torch.Generator().manual_seed(3))
    eps = torch.rand(4, 1, 1, generator=torch.Generator().manual_seed(3))
    hand = []
    for i in range(4):  # one image at a time: its own gradient norm
        x = (eps[i] * real[i] + (1 - eps[i]) * fake[i])[None].requires_grad_(True)
        grad, = torch.autograd.grad(critic(x).sum(), x)
        hand.append((grad.norm() - 1) ** 2)
    assert torch.allclose(got, torch.stack(hand).mean(), rtol=1e-4)
    x = (eps * real + (1 - eps) * fake).requires_grad_(True)
    grad, = torch.autograd.grad(critic(x).sum(), x)
    per_pixel = ((grad.abs() - 1) ** 2).mean()  # the public CryoGAN code's norm
    assert not torch.allclose(got, per_pixel, rtol=1e-2)
