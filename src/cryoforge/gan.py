"""WGAN-GP pieces every GAN of the project trains with (the 3D-WGAN of the hypothesis tests, Multi-CryoGAN).

Gulrajani et al. 2017: the critic minimises ``D(fake) − D(real) + λ·GP`` with the gradient penalty taken at random
interpolates between real and fake samples, one interpolation weight and one gradient norm per sample.
"""

from __future__ import annotations

import torch
from torch import nn


def gradient_penalty(critic: nn.Module, real: torch.Tensor, fake: torch.Tensor, generator: torch.Generator | None = None
                     ) -> torch.Tensor:
    """``mean_i (‖∇_x̂ D(x̂)_i‖₂ − 1)²`` at ``x̂ = εx + (1−ε)x̃``, one ε and one gradient norm **per sample**."""
    eps = torch.rand(len(real), *([1] * (real.ndim - 1)), generator=generator).to(real)
    x = (eps * real + (1 - eps) * fake).requires_grad_(True)
    grad, = torch.autograd.grad(critic(x).sum(), x, create_graph=True)
    return ((grad.flatten(1).norm(dim=1) - 1) ** 2).mean()


def critic_loss(critic: nn.Module, real: torch.Tensor, fake: torch.Tensor, gp_weight: float,
                generator: torch.Generator | None = None
                ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(D(fake) − D(real) + λ·GP, mean D(real), mean D(fake), GP)``: the critic's loss, one function so a parallel
    wrapper (``DistributedDataParallel``) sees the three critic passes as one forward."""
    d_real, d_fake = critic(real).mean(), critic(fake).mean()
    gp = gradient_penalty(critic, real, fake, generator)
    return d_fake - d_real + gp_weight * gp, d_real, d_fake, gp


def critic_update(critic: nn.Module, optimizer: torch.optim.Optimizer, real: torch.Tensor, fake: torch.Tensor,
                  gp_weight: float,
                  generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """One WGAN-GP critic step on ``D(fake) − D(real) + λ·GP`` (every GAN of the project uses it);
    returns ``(mean D(real), mean D(fake), GP)``."""
    loss, d_real, d_fake, gp = critic_loss(critic, real, fake, gp_weight, generator)
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    return d_real, d_fake, gp
