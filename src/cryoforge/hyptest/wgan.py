"""3D-WGAN-GP with minibatch discrimination: a generative model of macromolecular shapes.

Generator: ``z ∈ R^zdim`` → linear → ``(8w, box/16, …)`` → four transposed 4×4×4 stride-2 convolutions
(BatchNorm + LeakyReLU 0.2 after the first three, ``tanh`` last). Critic: four 4×4×4 stride-2 convolutions
with LeakyReLU and no BatchNorm, then a minibatch-discrimination layer (Salimans et al. 2016) whose
features tell the critic how close each sample is to the rest of its batch, then a linear output.
Training follows Gulrajani et al.: Wasserstein loss, gradient penalty 10 with the gradient norm taken
**per sample**, ``n_critic`` critic steps per generator step, Adam 1e-4, β = (0.5, 0.99). Volumes live in
``[-1, 1]`` (:func:`to_unit`); scores downstream are scale-invariant correlations.
"""

from __future__ import annotations

import torch
from torch import nn

from .config import WGANConfig

# channels-last 3-D convolutions: measured on 2 CPU cores at 64³ (batch 64 generated in 0.47 s instead of 0.62 s; a
# critic step with gradient penalty, batch 16, 0.41 s instead of 0.51 s); the same numbers to float rounding
CHANNELS_LAST = torch.channels_last_3d


class Generator(nn.Module):
    """3D-WGAN generator: a latent code ``(B, zdim)`` → a volume ``(B, n, n, n)`` in ``[-1, 1]``."""

    def __init__(self, cfg: WGANConfig) -> None:
        super().__init__()
        self.cfg = cfg
        w, s = cfg.width, cfg.box // 16
        self.fc = nn.Sequential(nn.Linear(cfg.zdim, 8 * w * s ** 3), nn.BatchNorm1d(8 * w * s ** 3),
                                nn.LeakyReLU(0.2))
        layers = []
        for c_in, c_out in ((8 * w, 4 * w), (4 * w, 2 * w), (2 * w, w)):
            layers += [nn.ConvTranspose3d(c_in, c_out, 4, 2, 1, bias=False), nn.BatchNorm3d(c_out), nn.LeakyReLU(0.2)]
        layers += [nn.ConvTranspose3d(w, 1, 4, 2, 1), nn.Tanh()]
        self.net = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        s = self.cfg.box // 16
        x = self.fc(z).view(len(z), 8 * self.cfg.width, s, s, s).contiguous(memory_format=CHANNELS_LAST)
        return self.net(x)[:, 0]


MBD_CUTOFF = 50.0  # exp(−50) ≈ 2e-22: nothing a sum of such terms can notice


class MinibatchDiscrimination(nn.Module):
    """``o_b(x_i) = Σ_{j≠i} exp(-‖M_{i,b} − M_{j,b}‖₁)`` with ``M = f·T`` reshaped ``(N, B, C)``; returns ``[f, o]``."""

    def __init__(self, in_features: int, kernels: int, dim: int) -> None:
        super().__init__()
        self.kernels, self.dim = kernels, dim
        self.T = nn.Parameter(torch.randn(in_features, kernels * dim) * 0.05)

    def forward(self, f: torch.Tensor) -> torch.Tensor:
        m = (f @ self.T).view(-1, self.kernels, self.dim)
        dist = (m[:, None] - m[None]).abs().sum(-1)  # (N, N, B)
        # exp(−d) is exactly 0 past MBD_CUTOFF: its tail (≤ 2e-22) times the upstream gradients gave float32
        # denormals, which, spread through every convolution of the backward pass, made a 64³ step 3–4× slower
        near = torch.exp(-dist.clamp(max=MBD_CUTOFF)) * (dist < MBD_CUTOFF)
        o = near.sum(1) - 1.0  # drop the sample's own term exp(0)
        return torch.cat([f, o], 1)


class Critic(nn.Module):
    """3D-WGAN critic with minibatch discrimination: volumes ``(B, n, n, n)`` → scores ``(B,)``."""

    def __init__(self, cfg: WGANConfig) -> None:
        super().__init__()
        w, s = cfg.width, cfg.box // 16
        layers, c_in = [], 1
        for c_out in (w, 2 * w, 4 * w, 8 * w):
            layers += [nn.Conv3d(c_in, c_out, 4, 2, 1), nn.LeakyReLU(0.2)]
            c_in = c_out
        self.net = nn.Sequential(*layers)
        self.net.to(memory_format=CHANNELS_LAST)  # type: ignore[call-overload]  # torch accepts it; its stubs omit it
        feat = 8 * w * s ** 3
        self.mbd = MinibatchDiscrimination(feat, cfg.mbd_kernels, cfg.mbd_dim)
        self.out = nn.Linear(feat + cfg.mbd_kernels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(self.mbd(self.net(x[:, None].contiguous(memory_format=CHANNELS_LAST)).flatten(1)))[:, 0]


def to_unit(maps: torch.Tensor) -> torch.Tensor:
    """Maps ``(N, n, n, n)`` → ``[-1, 1]`` each (its own max → 1, zero density → −1), the generator's range."""
    peak = maps.flatten(1).amax(1).clamp_min(1e-12)
    return 2 * (maps / peak.view(-1, 1, 1, 1)).clamp(0, 1) - 1


@torch.no_grad()
def generate(gen: Generator, n: int, seed: int | None = None, z: torch.Tensor | None = None, batch: int | None = None,
             device: str | torch.device = "cpu") -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` structures (or ``G(z)`` for given ``z``), in batches (default: 2²¹ voxels, at most 64 — 64 at 32³, 8 at
    64³, where 256 structures took 3.8 s against 4.4 s in batches of 64); returns ``(volumes in [0, 1], z)``."""
    batch = batch or max(1, min(64, (1 << 21) // gen.cfg.box**3))
    if z is None:
        g = torch.Generator().manual_seed(int(seed or 0))
        z = torch.randn(n, gen.cfg.zdim, generator=g)
    gen.eval()
    out = [gen(zb.to(device)).float().cpu() for zb in z.split(batch)]  # float32 also after bfloat16 inference
    return (torch.cat(out) + 1) / 2, z
