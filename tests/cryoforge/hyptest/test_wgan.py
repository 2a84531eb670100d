"""Tests of :mod:`cryoforge.hyptest.wgan`."""

import pytest
import torch

from cryoforge.hyptest.config import WGANConfig
from cryoforge.hyptest.wgan import Critic, Generator, MinibatchDiscrimination


def test_minibatch_discrimination_depends_on_the_batch():
    torch.manual_seed(0)
    mbd = MinibatchDiscrimination(10, 5, 3)
    f = torch.randn(3, 10)
    out = mbd(f)
    assert out.shape == (3, 15)
    f2 = f.clone()
    f2[2] += 1.0
    out2 = mbd(f2)
    assert torch.equal(out[0, :10], out2[0, :10])  # its own features are unchanged …
    assert not torch.allclose(out[0, 10:], out2[0, 10:])  # … its batch features are not
    assert torch.allclose(mbd(f[:1])[0, 10:], torch.zeros(5))  # alone in its batch: nothing to compare with


@pytest.mark.parametrize("box", [32, 64])
def test_generator_and_critic_shapes(box):
    cfg = WGANConfig(box=box, width=2, mbd_kernels=4, mbd_dim=2)
    x = Generator(cfg)(torch.randn(3, 100))
    assert x.shape == (3, box, box, box) and x.min() >= -1 and x.max() <= 1
    assert Critic(cfg)(x).shape == (3,)
    with pytest.raises(ValueError, match="32 or 64"):
        WGANConfig(box=48)
