"""Configurations of the cryoDRGN family: the model's architecture (frozen), its training, and the pose search.

Plain dataclasses (numpy, no torch): the CLI takes its defaults and choices from them; checkpoints store them as
dicts. Names follow cryoDRGN's command-line options where cryoDRGN has one.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

DOMAINS = ("hartley", "fourier")
PE_TYPES = ("gaussian", "geom_ft", "geom_full", "geom_lowf", "geom_nohighf", "linear_lowf", "none")


@dataclass(frozen=True)
class DrgnConfig:
    """cryoDRGN's architecture: decoder and encoder (zdim, layers, widths, positional encoding). ``D`` is the
    lattice size (image size + 1) and ``pe_dim`` / ``enc_mask`` default from the image size: :meth:`resolved`
    fills them in once the data are known."""

    zdim: int = 0
    players: int = 3
    pdim: int = 256
    domain: str = "hartley"
    pe_type: str = "gaussian"
    pe_dim: int | None = None  # default D//2, as cryoDRGN
    feat_sigma: float = 0.5
    activation: str = "relu"
    qlayers: int = 3
    qdim: int = 256
    encode_mode: str = "resid"
    enc_mask: int | None = None  # encoder's circle radius in pixels (default D//2)
    D: int | None = None  # lattice size: image size + 1

    def resolved(self, image_size: int) -> DrgnConfig:
        """The architecture for ``image_size``² images (unset sizes take cryoDRGN's defaults)."""
        if self.D is not None and self.D != image_size + 1:
            raise ValueError(f"this cryoDRGN model is for {self.D - 1}² images; got {image_size}²")
        return replace(self, D=image_size + 1, pe_dim=self.pe_dim or image_size // 2,
                       enc_mask=self.enc_mask or image_size // 2)


@dataclass
class DrgnTrainConfig:
    """cryoDRGN training: batch, learning rate, β (default 1/zdim), seed."""

    batch: int = 8
    lr: float = 1e-4
    beta: float | None = None
    seed: int = 0


@dataclass
class PoseSearchConfig:
    """Pose search schedule and grids (cryoDRGN's ``--ps-freq`` and friends): when to search, how finely, how often."""

    pretrain_images: int = 10_000
    every_epochs: float = 5.0  # cryoDRGN's --ps-freq
    l_start: float = 12.0
    l_end: float | None = None  # default D/2
    ramp_epochs: float = 25.0
    t_extent: float = 2.0  # pixels: round-0 shift grid over ±t_extent, refined each round
    t_ngrid: int = 5
    n_global: int = 4608
    keep: int = 8
    rounds: int = 5
    band_loss: bool = True  # train on the frequencies the searches use (≤ their band limit) until the ramp ends

    def shift_grid(self) -> np.ndarray:
        if self.t_extent <= 0 or self.t_ngrid < 2:
            return np.zeros((1, 2), np.float32)
        a = np.linspace(-self.t_extent, self.t_extent, self.t_ngrid, dtype=np.float32)
        return np.stack(np.meshgrid(a, a, indexing="ij"), -1).reshape(-1, 2)
