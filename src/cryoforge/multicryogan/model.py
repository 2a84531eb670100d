"""Multi-CryoGAN networks: a 3-D generator with its latent prior, and a 2-D image critic.

Generator: ``z ∈ R^zdim`` → the optional mapping network → linear → ``(8w, 4, 4, 4)`` → (trilinear ×2 upsampling,
3×3×3 convolution, LeakyReLU 0.2) until the box size → 3×3×3 convolution to one channel → times a soft spherical
mask (the particle lives inside the box). Upsampling + convolution instead of transposed convolutions avoids
checkerboard artefacts, which a projector turns into false high-resolution signal. The mapping network (``mapping``
> 0) is the paper's manifold-mapping module made residual: ``z + f(z)``, ``f`` of ``mapping`` LeakyReLU layers 64
wide and a last layer initialised to zero, so training starts from the plain decoder and a straight latent segment
may learn to bend or jump, as a discrete mixture needs. The generator also holds the simulator's one learned number,
the noise level ``log σ`` (in normalised image units).

Latent prior (``prior``): ``segment`` — the paper's ``z = (1 − α) z₀ + α z₁`` with fixed random ``z₀, z₁``
(buffers, saved with the weights) and ``α ~ U[0, 1]``, so the manifold's coordinate is ``α``; or ``gaussian`` —
``z ~ N(0, I)``. Critic: stride-2 4×4 convolutions with LeakyReLU (no normalisation, as the gradient penalty
requires), then a linear output.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from .config import McganConfig

MAPPING_WIDTH = 64


def soft_sphere(n: int, radius: float, edge: float = 2.0) -> torch.Tensor:
    """A sphere of ``radius`` voxels with a cosine edge ``edge`` voxels wide, centred at ``n // 2``."""
    ax = torch.arange(n, dtype=torch.float32) - n // 2
    r = torch.sqrt(ax[:, None, None] ** 2 + ax[None, :, None] ** 2 + ax[None, None, :] ** 2)
    return (0.5 * (1 + torch.cos(math.pi * ((r - radius) / edge).clamp(0, 1)))).float()


class Generator(nn.Module):
    """Latent coordinates → volumes, coarse to fine, inside a soft spherical support."""

    z0: torch.Tensor
    z1: torch.Tensor
    mask: torch.Tensor

    def __init__(self, cfg: McganConfig, noise_sigma: float = 1.0) -> None:
        super().__init__()
        self.cfg = cfg
        levels = int(math.log2(cfg.box // 4))
        chans = [cfg.gwidth * 2 ** (levels - i) for i in range(levels + 1)]  # 4³ … box³
        self.mapping = None
        if cfg.mapping:
            layers, width = [], cfg.zdim
            for _ in range(cfg.mapping):
                layers += [nn.Linear(width, MAPPING_WIDTH), nn.LeakyReLU(0.2)]
                width = MAPPING_WIDTH
            out = nn.Linear(width, cfg.zdim)
            nn.init.zeros_(out.weight)
            nn.init.zeros_(out.bias)
            layers.append(out)
            self.mapping = nn.Sequential(*layers)
        self.fc = nn.Linear(cfg.zdim, chans[0] * 64)
        blocks = []
        for c_in, c_out in zip(chans[:-1], chans[1:], strict=True):
            blocks += [nn.Upsample(scale_factor=2, mode="trilinear", align_corners=False),
                       nn.Conv3d(c_in, c_out, 3, padding=1), nn.LeakyReLU(0.2)]
        blocks.append(nn.Conv3d(chans[-1], 1, 3, padding=1))
        self.net = nn.Sequential(*blocks)
        self.c0 = chans[0]
        g = torch.Generator().manual_seed(int(cfg.seed))
        self.register_buffer("z0", torch.randn(cfg.zdim, generator=g))
        self.register_buffer("z1", torch.randn(cfg.zdim, generator=g))
        self.register_buffer("mask", soft_sphere(cfg.box, cfg.box / 2 - 3))
        self.log_noise = nn.Parameter(torch.tensor(math.log(noise_sigma), dtype=torch.float32))

    def latent(self, coords: torch.Tensor) -> torch.Tensor:
        """Network inputs ``z`` ``(B, zdim)`` for manifold coordinates ``(B, latent_dim)`` (α for the segment)."""
        if self.cfg.prior == "segment":
            a = coords[:, :1]
            return (1 - a) * self.z0 + a * self.z1
        return coords

    def sample_coords(self, n: int, generator: torch.Generator) -> torch.Tensor:
        """Coordinates from the prior: ``α ~ U[0, 1]`` ``(n, 1)`` or ``z ~ N(0, I)``."""
        if self.cfg.prior == "segment":
            return torch.rand(n, 1, generator=generator)
        return torch.randn(n, self.cfg.zdim, generator=generator)

    def forward(self, coords: torch.Tensor) -> torch.Tensor:
        """Volumes ``(B, n, n, n)`` for manifold coordinates ``(B, latent_dim)``."""
        z = self.latent(coords)
        if self.mapping is not None:
            z = z + self.mapping(z)
        x = self.fc(z).view(len(coords), self.c0, 4, 4, 4)
        return self.net(x)[:, 0] * self.mask

    @property
    def noise_sigma(self) -> torch.Tensor:
        return self.log_noise.exp()


class Critic(nn.Module):
    """Images ``(B, n, n)`` → scores ``(B,)`` (a convolutional WGAN critic)."""

    def __init__(self, cfg: McganConfig, image_size: int | None = None) -> None:
        super().__init__()
        n = image_size or cfg.box
        layers, c_in, c = [], 1, cfg.cwidth
        while n > 4:
            layers += [nn.Conv2d(c_in, c, 4, 2, 1), nn.LeakyReLU(0.2)]
            c_in, c, n = c, c * 2, n // 2
        self.net = nn.Sequential(*layers)
        self.out = nn.Linear(c_in * n * n, 1)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.out(self.net(images[:, None]).flatten(1))[:, 0]
