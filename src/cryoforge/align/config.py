"""Configurations of the alignment family: Gum-Net's architecture (frozen), its training, and averaging.

Plain dataclasses without torch: the CLI takes its defaults and choices from them, and checkpoints store them as
dicts. Presets name architectures of the paper's shape at several widths.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ..sim.params import TomoParams

if TYPE_CHECKING:
    from typing import Any


POOLINGS = ("dct", "max", "avg")

CORRELATIONS = ("siamese", "single")

# (output size / input size, kept coefficients / output size) of the four pooling layers at 32³
_POOL_RATIOS = ((26 / 30, 22 / 26), (18 / 24, 15 / 18), (12 / 16, 10 / 12), (8 / 10, 7 / 8))

PRESETS = {
    "paper": {"width": 32, "head_channels": 1024, "fc_hidden": 2000},
    "compact": {"width": 16, "head_channels": 64, "fc_hidden": 256},
    "small": {"width": 8, "head_channels": 32, "fc_hidden": 256},
    "tiny": {"width": 4, "head_channels": 8, "fc_hidden": 32},
}
ROTATIONS = ("axis_angle", "zyz", "6d")
LOSSES = ("constrained", "imputed")
LOCAL_METHODS = ("classical", "gumnet")


@dataclass(frozen=True)
class GumNetConfig:
    """Architecture of a Gum-Net; ``box`` is the cubic input size it accepts."""

    box: int = 32
    width: int = 8
    head_channels: int = 32
    fc_hidden: int = 256
    pooling: str = "dct"
    correlation: str = "siamese"
    rotation: str = "axis_angle"  # or "zyz" (the reference code's) or "6d" (continuous; see warp.params_to_pose)

    @classmethod
    def preset(cls, name: str, **overrides: Any) -> GumNetConfig:
        if name not in PRESETS:
            raise ValueError(f"unknown Gum-Net preset {name!r}; choose one of {sorted(PRESETS)}")
        return cls(**{**PRESETS[name], **overrides})

    def validate(self) -> GumNetConfig:
        if self.pooling not in POOLINGS:
            raise ValueError(f"pooling must be one of {POOLINGS}; got {self.pooling!r}")
        if self.rotation not in ROTATIONS:
            raise ValueError(f"rotation must be one of {ROTATIONS}; got {self.rotation!r}")
        if self.correlation not in CORRELATIONS:
            raise ValueError(f"correlation must be one of {CORRELATIONS}; got {self.correlation!r}")
        pool_sizes(self.box)
        return self


def pool_sizes(box: int) -> list[tuple[int, int, int]]:
    """``(input, output, kept)`` sizes of the four pooling layers and the final feature size for ``box``."""
    sizes, n = [], box
    for out_ratio, keep_ratio in _POOL_RATIOS:
        n -= 2  # valid 3×3×3 convolution
        out = max(1, round(n * out_ratio))
        sizes.append((n, out, max(1, round(out * keep_ratio))))
        n = out
    final = n - 2
    if final < 5:
        raise ValueError(f"Gum-Net needs a box of at least 28 voxels (its 3×3×3 head needs ≥ 5³ features); got {box}")
    return sizes


@dataclass
class TrainConfig:
    """Training settings (the data: ``maps`` given separately; ``tomo``: how the simulator makes the pairs)."""

    batch: int = 16
    lr: float = 3e-4
    curriculum_steps: int = 1500  # relative rotations/shifts ramp from 15°/1 voxel to 180°/max_shift (0: off)
    # A curriculum gated on validation instead (gate > 0; issue 27: the correlation loss points to the right rotation
    # only within ≈ 30–45°, and a ramp by step count leaves that basin while the error is still at chance): the
    # rotation range starts at start_angle and is multiplied by gate_factor (up to 180°) at a validation whose mean
    # rotation error, on held-out pairs drawn within the current range, is below gate × the range; the training SNR
    # stays at the highest of snrs until the range reaches wide_angle, then cycles through all of them. Angles within a
    # range are uniform, so guessing no rotation scores gate 0.5: a useful gate is well below it (0.25).
    gate: float = 0.0
    gate_factor: float = 1.5
    start_angle: float = 15.0
    wide_angle: float = 90.0
    # A model for local refinement (averaging's local iterations need only small rotations): training pairs never
    # turn by more than max_angle degrees (both curricula stop there; validation draws within it too).
    max_angle: float = 180.0
    # Supervised warm start (a deviation from the paper, issue 27): the first supervised_steps steps minimise the
    # pose error against the simulated truth (‖R̂ − R‖_F² + (‖t̂ − t‖ / 4 voxels)²) instead of the unsupervised
    # correlation loss, which then takes over. 0: purely unsupervised, as the paper.
    supervised_steps: int = 0
    # Pre-simulated pairs (cryoforge.align.bank; a folder) instead of simulating each step's: rows are drawn among
    # the bank's pairs at the step's SNR within the step's rotation range (its shifts are the bank's). "": simulate.
    bank: str = ""
    loss: str = "constrained"  # or "imputed" (the paper's; see gumnet_loss)
    snrs: list[float] = field(default_factory=lambda: [100.0, 0.1, 0.03])
    wedge_b: float = 30.0
    max_shift: float = 7.0
    seed: int = 0
    val_pairs: int = 48
    tomo: TomoParams = field(default_factory=TomoParams)


@dataclass
class AverageConfig:
    """Reference-free averaging: iterations (global searches first, then local), the global grid, the low-pass."""

    iterations: int = 8
    global_iterations: int = 3  # iterations that search all of SO(3) against the shared low-resolution start
    own_global_iterations: int = 1  # then global searches against each half's own average at the last resolution
    # (the 60 Å start cannot tell 4V5D from its 150° turn: 15 % of 220 tomogram particles stayed turned; one such
    # search at 25 Å put all of them right, docs/benchmarks.md); the later iterations refine locally
    seed: int = 0
    lowpass: float = 0.0  # Å; 0: follow the last gold-standard resolution
    global_rotations: int = 1000
    candidates: int = 2
    epsilon: float = 0.05  # Wiener-like regularisation, fraction of the mean weight
    # How the local iterations align (issue 27): "classical" (local grids around the last pose) or "gumnet" (one
    # Gum-Net pass per subtomogram against the average brought to its last pose; the update kept only where it raises
    # the wedge-masked correlation with the average). The global iterations always search.
    local_method: str = "classical"
    common_lowpass: float = 60.0  # Å: the global iterations align both halves to their joint average low-passed
    # to this (RELION's shared low-resolution start; beyond it the halves stay independent); 0: each on its own
