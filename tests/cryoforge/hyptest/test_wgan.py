"""Tests of :mod:`cryoforge.hyptest.wgan`."""

import pytest
import torch

from cryoforge.hyptest.config import WGANConfig
from cryoforge.hyptest.wgan import MBD_CUTOFF, Critic, Generator, MinibatchDiscrimination


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


def test_minibatch_discrimination_makes_no_denormals():
    """Two samples 80 apart: exp(−80) ≈ 2e-35 is a normal float32, but times a small upstream gradient it is a
    denormal, and denormals spread through the backward pass made a 64³ training step 3–4× slower on the CPU. Past
    the cutoff the term is exactly zero, and so are its gradients."""
    mbd = MinibatchDiscrimination(1, 4, 1)
    with torch.no_grad():
        mbd.T.copy_(torch.ones(1, 4))
    f = torch.tensor([[0.0], [80.0]], requires_grad=True)
    out = mbd(f)
    assert torch.all(out[:, 1:] == 0)
    (out[:, 1:] * 1e-5).sum().backward()
    tiny = torch.finfo(torch.float32).tiny
    for grad in (f.grad, mbd.T.grad):
        assert grad is not None and not torch.any((grad != 0) & (grad.abs() < tiny)), grad
    near = mbd(torch.tensor([[0.0], [MBD_CUTOFF / 2]]))  # closer than the cutoff: the exact term
    assert torch.allclose(near[:, 1:], torch.full((2, 4), float(torch.exp(torch.tensor(-MBD_CUTOFF / 2)))))


@pytest.mark.parametrize("box", [32, 64])
def test_generator_and_critic_shapes(box):
    cfg = WGANConfig(box=box, width=2, mbd_kernels=4, mbd_dim=2)
    x = Generator(cfg)(torch.randn(3, 100))
    assert x.shape == (3, box, box, box) and x.min() >= -1 and x.max() <= 1
    assert Critic(cfg)(x).shape == (3,)
    with pytest.raises(ValueError, match="32 or 64"):
        WGANConfig(box=48)


def test_pseudo_complexes_in_bfloat16_are_the_float32_ones_to_bfloat16_rounding():
    """The null set's inference precision (:func:`cryoforge.resources.inference_precision`): bfloat16 autocast gives
    float32 volumes within 2 % of the [0, 1] range of float32's (and not the same: the context took effect); fp32 gives
    float32's exactly; ``auto`` is bfloat16 only on a CPU that computes it natively."""
    from cryoforge.hyptest.wgan import generate
    from cryoforge.resources import inference_precision, native_bf16

    torch.manual_seed(3)
    gen = Generator(WGANConfig(box=32, width=4, zdim=8))
    a, z = generate(gen, 4, seed=1)
    with inference_precision("cpu", "bf16"):
        b, _ = generate(gen, 4, z=z)
    assert b.dtype == torch.float32 and 0 < float((a - b).abs().max()) < 0.02
    with inference_precision("cpu", "fp32"):
        assert torch.equal(generate(gen, 4, z=z)[0], a)
    assert isinstance(inference_precision("cpu", "auto"), torch.autocast) == native_bf16()
    with pytest.raises(ValueError, match="precision must be one of"):
        inference_precision("cpu", "half")
