"""Configurations of the Multi-CryoGAN family: the architecture (frozen) and the training. Plain dataclasses
without torch (the CLI takes its defaults and choices from them; checkpoints store them as dicts)."""

from __future__ import annotations

from dataclasses import dataclass

PRIORS = ("segment", "gaussian")


@dataclass(frozen=True)
class McganConfig:
    """Multi-CryoGAN architecture: box, latent prior and size, generator and critic widths, the mapping network."""

    box: int = 32
    zdim: int = 8
    prior: str = "segment"
    gwidth: int = 8  # generator channels at full size; ×2 per coarser level
    cwidth: int = 32  # critic channels at the first level; ×2 per level
    seed: int = 0  # draws z₀, z₁
    mapping: int = 0  # hidden layers (64 wide) of the residual mapping network; 0: none

    def __post_init__(self):
        if self.box < 8 or self.box & (self.box - 1):
            raise ValueError(f"Multi-CryoGAN boxes are powers of two ≥ 8 (16, 32, 64…); got {self.box}")
        if self.prior not in PRIORS:
            raise ValueError(f"prior must be one of {', '.join(PRIORS)}; got {self.prior!r}")
        if self.zdim < 1 or self.gwidth < 1 or self.cwidth < 1 or self.mapping < 0:
            raise ValueError("zdim, gwidth and cwidth must be positive, mapping ≥ 0")

    @property
    def latent_dim(self) -> int:
        """Dimension of the manifold's coordinate: 1 (α) for the segment prior, ``zdim`` for the Gaussian."""
        return 1 if self.prior == "segment" else self.zdim


@dataclass
class McganTrainConfig:
    """Multi-CryoGAN training: batch, poses per volume, learning rates, critic steps, gradient penalty, seed."""

    batch: int = 32  # images per critic / generator batch
    poses: int = 8  # poses per generated volume (batch / poses volumes per batch)
    n_critic: int = 4
    gp_weight: float = 10.0
    lr: float = 1e-4
    betas: tuple[float, float] = (0.5, 0.9)
    max_shift: float = 0.0  # px, radius of the uniform shift disc
    learn_noise: bool = True
    seed: int = 0

    def __post_init__(self):
        if self.batch < 2 or self.poses < 1 or self.batch % self.poses:
            raise ValueError(f"batch ({self.batch}) must be a multiple of poses ({self.poses}) and ≥ 2")
        if self.n_critic < 1:
            raise ValueError("n_critic must be at least 1")
