"""Gum-Net (Zeng & Xu, CVPR 2020; seeds 004/001): unsupervised geometric matching of two subtomograms.

Architecture (as the reference Keras code, sizes for a 32³ input):

* **Feature extractor** — five valid 3×3×3 convolutions (``width·(1, 2, 4, 8, 16)`` filters; the paper's
  width is 32 → 32…512), each followed by ReLU and BatchNorm (the last by BatchNorm only), with pooling
  between them: DCT spectral pooling & filtering 30→26³ keeping 22³, 24→18³/15³, 16→12³/10³, 10→8³/7³,
  ending at 6³. Convolution weights are shared between the two inputs, BatchNorm layers are not.
  Features are L2-normalised per voxel.
* **Siamese correlation** — ``c_ab[j, i] = ⟨f_a(i), f_b(j)⟩`` for all voxel pairs (6³ × 216), ReLU and
  L2 normalisation, and ``c_ba`` the same with the roles swapped; each goes through its own two 3×3×3
  convolutions (``head_channels``; the paper's 1024) with BatchNorm and ReLU.
* **Regression** — the flattened maps are concatenated and passed through two linear layers
  (``fc_hidden``; the paper's 2000, without activation, as in the reference) and a final linear layer
  with sigmoid → 6 parameters (rotation and shift, :func:`cryoforge.align.warp.params_to_pose`: the
  paper's ZYZ angles with ``rotation='zyz'``, or by default a rotation vector, which unlike ZYZ is not at
  a gimbal lock at the identity), initialised at the identity transform.
* **Spatial transformer** — ``s_b`` is warped back by the estimated transform, its Fourier mask rotated
  with it, and the unsampled region filled from ``s_a`` (:func:`cryoforge.align.warp.impute_wedge`).
  The loss is ``1 − Pearson(s_a, ŝ_b)`` computed per sample, then averaged (:func:`gumnet_loss`: the
  paper's imputed form, or by default the wedge-constrained form, for a measured reason given there).

Ablations (paper Table 2): ``pooling='max'|'avg'`` replace the DCT pooling by adaptive max/average
pooling to the same sizes; ``correlation='single'`` keeps only ``c_ab``.
Arbitrary cubic boxes: the pooling sizes scale with the box (``pool_sizes``); a checkpoint works only
at the box it was trained for.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import nn

from .config import LOSSES, GumNetConfig, pool_sizes
from .dct import SpectralPool3d
from .warp import (
    impute_wedge,
    masked_pearson,
    n_params,
    params_to_pose,
    pearson,
    rotate_fourier_masks,
    warp_inverse,
)

if TYPE_CHECKING:
    pass



def feature_size(box: int) -> int:
    """Side of the feature map Gum-Net correlates for a ``box``³ input: the last pooling's output less 2."""
    return pool_sizes(box)[-1][1] - 2


class _Pool(nn.Module):
    def __init__(self, pooling: str, n: int, size: int, keep: int):
        super().__init__()
        self.pooling, self.size = pooling, size
        self.dct = SpectralPool3d(n, size, keep) if pooling == "dct" else None

    def forward(self, x):
        if self.pooling == "dct":
            return self.dct(x)
        fn = F.adaptive_max_pool3d if self.pooling == "max" else F.adaptive_avg_pool3d
        return fn(x, self.size)


def l2_normalize(x: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """Normalise the channel vector of every voxel of ``(B, C, …)`` to unit length."""
    return x / torch.sqrt((x * x).sum(1, keepdim=True) + eps)


class FeatureExtractor(nn.Module):
    """Shared convolutions, one BatchNorm set per branch (``branch`` 0 for s_a, 1 for s_b)."""

    def __init__(self, cfg: GumNetConfig) -> None:
        super().__init__()
        chans = [1] + [cfg.width * 2 ** i for i in range(5)]
        self.convs = nn.ModuleList(nn.Conv3d(chans[i], chans[i + 1], 3) for i in range(5))
        self.norms = nn.ModuleList(nn.ModuleList(nn.BatchNorm3d(c) for c in chans[1:]) for _ in range(2))
        self.pools = nn.ModuleList(_Pool(cfg.pooling, *s) for s in pool_sizes(cfg.box))

    def forward(self, x: torch.Tensor, branch: int) -> torch.Tensor:
        x = x[:, None]
        for i, conv in enumerate(self.convs):
            x = conv(x)
            norms = self.norms[branch]
            assert isinstance(norms, nn.ModuleList)
            x = self.pools[i](norms[i](F.relu(x))) if i < 4 else norms[i](x)
        return l2_normalize(x)


def correlate(fa: torch.Tensor, fb: torch.Tensor) -> torch.Tensor:
    """Siamese correlation map ``(B, m³, m, m, m)``: channel ``i`` holds ``⟨f_a(i), f_b(·)⟩``."""
    b, c, m = fa.shape[0], fa.shape[1], fa.shape[-1]
    corr = torch.einsum("bci,bcj->bij", fa.reshape(b, c, -1), fb.reshape(b, c, -1))
    return l2_normalize(F.relu(corr.reshape(b, m ** 3, m, m, m)))


def _head(in_ch: int, ch: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv3d(in_ch, ch, 3), nn.BatchNorm3d(ch), nn.ReLU(),
                         nn.Conv3d(ch, ch, 3), nn.BatchNorm3d(ch), nn.ReLU(), nn.Flatten())


class GumNet(nn.Module):
    """``forward(s_a, s_b) → (B, 6)`` sigmoid parameters (``(B, 9)`` for the 6-D rotation output); :meth:`align`
    also warps and imputes."""

    def __init__(self, cfg: GumNetConfig) -> None:
        super().__init__()
        self.cfg = cfg.validate()
        m = feature_size(cfg.box)
        self.features = FeatureExtractor(cfg)
        self.head_ab = _head(m ** 3, cfg.head_channels)
        self.head_ba = _head(m ** 3, cfg.head_channels) if cfg.correlation == "siamese" else None
        n_flat = cfg.head_channels * (m - 4) ** 3 * (2 if self.head_ba is not None else 1)
        hidden = [nn.Linear(n_flat, cfg.fc_hidden), nn.Linear(cfg.fc_hidden, cfg.fc_hidden)]
        out = nn.Linear(cfg.fc_hidden, n_params(cfg.rotation))
        nn.init.zeros_(out.weight)  # start at the identity transform: sigmoid(0) = 0.5, 6-D (1, 0, 0, 0, 1, 0)
        nn.init.zeros_(out.bias)
        if cfg.rotation == "6d":
            with torch.no_grad():
                out.bias[0] = out.bias[4] = 1.0
        self.regress = nn.Sequential(*hidden, out)

    def check_input(self, s_a: torch.Tensor, s_b: torch.Tensor) -> None:
        if s_a.shape != s_b.shape:
            raise ValueError(f"s_a and s_b must have the same shape; got {tuple(s_a.shape)} and {tuple(s_b.shape)}")
        shape = tuple(s_a.shape[-3:])
        if s_a.ndim != 4 or len(set(shape)) != 1:
            raise ValueError(f"Gum-Net takes batches of cubic volumes (B, n, n, n); got {tuple(s_a.shape)}")
        if shape[0] != self.cfg.box:
            raise ValueError(f"this Gum-Net was built for {self.cfg.box}³ subtomograms; got {shape[0]}³ "
                             f"(resample the data or train a model for box {shape[0]})")

    def forward(self, s_a: torch.Tensor, s_b: torch.Tensor) -> torch.Tensor:
        self.check_input(s_a, s_b)
        fa, fb = self.features(s_a, 0), self.features(s_b, 1)
        parts = [self.head_ab(correlate(fa, fb))]
        if self.head_ba is not None:
            parts.append(self.head_ba(correlate(fb, fa)))
        raw = self.regress(torch.cat(parts, 1))
        if self.cfg.rotation == "6d":  # the 6-D rotation unbounded, the shifts through the sigmoid
            return torch.cat([raw[:, :6], torch.sigmoid(raw[:, 6:])], 1)
        return torch.sigmoid(raw)

    def align(self, s_a: torch.Tensor, s_b: torch.Tensor, mask_b: torch.Tensor | None = None,
              params: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Estimate ``s_b = T(R, t) s_a``; returns ``(R, t, ŝ_b)`` with ``ŝ_b`` imputed when ``mask_b`` is given.
        ``params``: the network's output for this pair, when already computed (through a parallel wrapper)."""
        p = self(s_a, s_b) if params is None else params
        rot, shifts = params_to_pose(p, self.cfg.box, self.cfg.rotation)
        warped = warp_inverse(s_b, rot, shifts)
        if mask_b is not None:
            warped = impute_wedge(s_a, warped, rotate_fourier_masks(mask_b.expand_as(s_b), rot))
        return rot, shifts, warped


def standardize(x: torch.Tensor) -> torch.Tensor:
    """Zero mean, unit variance per volume (the network's input scale)."""
    dims = (-3, -2, -1)
    return (x - x.mean(dims, keepdim=True)) / (x.std(dims, keepdim=True) + 1e-6)




def gumnet_loss(model: GumNet, s_a: torch.Tensor, s_b: torch.Tensor, mask_b: torch.Tensor,
                loss: str = "constrained", forward: torch.nn.Module | None = None) -> torch.Tensor:
    """Per-sample ``1 − correlation``, averaged over the batch.

    ``imputed`` (the paper's): Pearson of ``s_a`` and the wedge-imputed ``ŝ_b``. ``constrained`` (default):
    Pearson over the Fourier region ``ŝ_b`` sampled. The imputed loss has a degenerate optimum when the
    two subtomograms correlate weakly (noise, different defocus): shift ``s_b`` out of the box and turn
    its mask so the imputed region carries most of ``s_a``'s power — correlation ≈ 0.6 for a 30° wedge
    whatever the pose. Training reached it in 200 steps (loss 0.34, translation error 28 voxels) on our
    simulated pairs; the constrained loss cannot be won that way.

    ``forward``: the module the network runs through (``model`` wrapped in ``DistributedDataParallel``).
    """
    if loss not in LOSSES:
        raise ValueError(f"loss must be one of {LOSSES}; got {loss!r}")
    p = (forward or model)(s_a, s_b)
    if loss == "imputed":
        _, _, warped = model.align(s_a, s_b, mask_b, params=p)
        return (1 - pearson(s_a, warped)).mean()
    rot, shifts = params_to_pose(p, model.cfg.box, model.cfg.rotation)
    warped = warp_inverse(s_b, rot, shifts)
    return (1 - masked_pearson(s_a, warped, rotate_fourier_masks(mask_b.expand_as(s_b), rot))).mean()


SHIFT_SCALE = 4.0  # voxels: a shift error of this size weighs as ‖ΔR‖_F = 1 (≈ 41°) in the supervised loss


def supervised_loss(model: GumNet, s_a: torch.Tensor, s_b: torch.Tensor, rotations: torch.Tensor,
                    shifts: torch.Tensor, forward: torch.nn.Module | None = None) -> torch.Tensor:
    """The warm start's loss against the simulated truth (``s_b = T(R, t) s_a``): ``‖R̂ − R‖_F² +
    (‖t̂ − t‖ / SHIFT_SCALE)²`` averaged over the batch. Not the paper's (it trains without labels); issue 27 adds it
    before the unsupervised loss because the correlation loss points to the right rotation only near it."""
    p = (forward or model)(s_a, s_b)
    rot, t = params_to_pose(p, model.cfg.box, model.cfg.rotation)
    frob = ((rot - rotations) ** 2).sum((-2, -1))
    return (frob + ((t - shifts) ** 2).sum(-1) / SHIFT_SCALE ** 2).mean()
