"""Configurations of the hypothesis-test family: the 3D-WGAN's architecture (frozen), GAN and regressor training,
template scoring and the Monte-Carlo test. Plain dataclasses without torch (the CLI takes its defaults from them)."""

from __future__ import annotations

from dataclasses import dataclass, field

BOXES = (32, 64)


@dataclass(frozen=True)
class WGANConfig:
    """3D-WGAN architecture: box, latent size, channel widths, minibatch discrimination."""

    box: int = 32
    zdim: int = 100
    width: int = 16  # channels of the finest hidden level; ×2 per level (the paper's code: 64)
    mbd_kernels: int = 32  # minibatch-discrimination kernels B and their dimension C
    mbd_dim: int = 8

    def __post_init__(self):
        if self.box not in BOXES:
            raise ValueError(f"the 3D-WGAN works on {' or '.join(map(str, BOXES))}³ volumes; got box {self.box}")
        if self.zdim < 1 or self.width < 1:
            raise ValueError("zdim and width must be positive")


@dataclass
class GANTrainConfig:
    """3D-WGAN training: batch, learning rate, critic steps per generator step, gradient-penalty weight, seed."""

    batch: int = 16
    lr: float = 1e-4
    betas: tuple[float, float] = (0.5, 0.99)
    n_critic: int = 10
    gp_weight: float = 10.0
    rotations: int = 200  # rotated copies per known complex (the paper: 600)
    seed: int = 0


@dataclass
class RegressorTrainConfig:
    """Training of the regressor that inverts the generator (volume → code)."""

    batch: int = 32
    lr: float = 1e-4
    rotations: int = 200
    seed: int = 0


@dataclass
class ScoreConfig:
    """Template scoring: coarse box and SO(3) grid, local refinement, band and shift limits."""

    coarse_box: int = 16
    n_rotations: int = 4000  # ≈ 11° spacing
    band: float = 0.8  # fraction of Nyquist of the coarse box used in the coarse stage
    candidates: int = 4
    centred: int = 4  # more candidate rotations, ranked by the phase-aware correlation with P taken as centred
    neighbours: int = 6  # grid neighbours tried around the best candidate (0: none)
    fine_box: int | None = 24  # the fine stage works on Fourier-cropped volumes of this size (None: full size)
    lowpass: float = 1.0  # fraction of Nyquist of the fine box
    max_shift: float = 4.0  # voxels (full box)
    chunk: int = 128  # templates per fine-stage batch
    equalize: bool = True  # rescale every template to the scorer's radial amplitude ``profile`` (when one is given)

    def validate(self, n: int) -> ScoreConfig:
        if self.coarse_box > n or self.coarse_box < 8:
            raise ValueError(f"coarse_box must be between 8 and the box size {n}; got {self.coarse_box}")
        if self.fine_box is not None and not self.coarse_box <= self.fine_box:
            raise ValueError(f"fine_box ({self.fine_box}) must be at least coarse_box ({self.coarse_box})")
        if self.n_rotations < 1 or self.candidates < 1:
            raise ValueError("n_rotations and candidates must be positive")
        if self.centred < 0:
            raise ValueError(f"centred must be ≥ 0; got {self.centred}")
        return self


@dataclass
class HypTestConfig:
    """Monte-Carlo test: null-set size, prior of the rejection region, KDE rotations, significance level, scoring."""

    n_pseudo: int = 985  # pseudo-complexes in the null set (plus the K − 1 other known templates)
    prior: float = 1.0  # π of the rejection region N(z) < π·E(z)
    kde_rotations: int = 300  # rotations of C_I whose codes make the KDE
    # None: codes from the GAN prior N(0, I) (the paper); τ > 0: the neighbour null, codes drawn at spread τ around
    # C_I's own codes (cryoforge.hyptest.null, a deviation from the paper)
    null_spread: float | None = None
    alpha: float = 0.01
    seed: int = 0
    score: ScoreConfig = field(default_factory=ScoreConfig)
    precision: str = "auto"  # the networks' inference (codes, pseudo-complexes): cryoforge.resources.inference_precision
