"""Poses found during training (cryoDRGN's ``abinit_homo`` / ``abinit_het``): the schedule of branch-and-bound
searches, the per-image pose table kept in the checkpoint, and pose errors against known poses up to the
reconstruction's global rotation and hand.

Schedule (cryoDRGN's): the first ``pretrain_images`` images train the decoder at random poses (a rotationally
averaged start); from then on each image's pose is searched when it is first drawn and again once ``every_epochs``
epochs have passed since its last search, otherwise its stored pose is used. The search's band limit marches from
``l_start`` to ``l_end`` Fourier pixels over ``ramp_epochs`` epochs after pretraining. With ``band_loss`` the
training loss follows the same band limit (``l_start`` while pretraining), so that the model does not fit
high-frequency noise at poses found at low resolution (as ab initio refinements grow their resolution; cryoDRGN
trains on the whole circle throughout).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch import nn

from ..conventions import random_rotations, rotation_angle_deg, rotation_frobenius
from .config import PoseSearchConfig

if TYPE_CHECKING:
    from ..hints import Tensorish



class PoseTable(nn.Module):
    """Each image's current rotation ``(N, 3, 3)``, shift ``(N, 2)`` (pixels) and the step of its last search
    (−1: never); buffers, so the table travels in the checkpoint and a resumed run keeps its poses."""

    rot: torch.Tensor
    trans: torch.Tensor
    searched: torch.Tensor

    def __init__(self, n: int) -> None:
        super().__init__()
        self.register_buffer("rot", torch.eye(3).repeat(n, 1, 1))
        self.register_buffer("trans", torch.zeros(n, 2))
        self.register_buffer("searched", torch.full((n,), -1, dtype=torch.long))


class PoseSchedule:
    """Which images of a batch need a search at ``step``, and the band limit then."""

    def __init__(self, cfg: PoseSearchConfig, n_images: int, batch: int, D: int) -> None:
        self.cfg, self.D = cfg, D
        self.steps_per_epoch = max(1.0, n_images / batch)
        self.pretrain_steps = int(math.ceil(cfg.pretrain_images / batch))
        self.every_steps = max(1, int(round(cfg.every_epochs * self.steps_per_epoch)))
        self.l_end = float(cfg.l_end or D // 2)

    def pretraining(self, step: int) -> bool:
        return step <= self.pretrain_steps

    def random_poses(self, n: int, seed: int, step: int) -> torch.Tensor:
        return random_rotations(n, seed * 1_000_003 + 7919 * step + 1)

    def due(self, searched: torch.Tensor, step: int) -> torch.Tensor:
        return (searched < 0) | (step - searched >= self.every_steps)

    def band(self, step: int) -> tuple[float, float]:
        """``(k_start, k_end)`` of the search at ``step``, in Fourier pixels."""
        ramp = max(self.cfg.ramp_epochs * self.steps_per_epoch, 1.0)
        frac = min(1.0, max(0.0, (step - self.pretrain_steps) / ramp))
        l_now = self.cfg.l_start + (self.l_end - self.cfg.l_start) * frac
        return min(self.cfg.l_start, l_now), min(l_now, self.l_end)


MIRROR = torch.diag(torch.tensor([1.0, 1.0, -1.0]))


def _frame(r_est: torch.Tensor, r_true: torch.Tensor, inlier_deg: float = 20.0, tries: int = 64) -> torch.Tensor:
    """The global rotation ``A`` with ``r_est ≈ r_true @ A`` (a reconstruction is only defined up to one): the
    candidate ``r_trueᵢᵀ r_estᵢ`` with most inliers, then the SO(3) projection of the inliers' mean."""
    rel = r_true.transpose(-1, -2) @ r_est  # (N, 3, 3)
    cand = rel[torch.linspace(0, len(rel) - 1, min(tries, len(rel))).long()]
    counts = torch.stack([(rotation_angle_deg(rel, a.expand_as(rel)) < inlier_deg).sum() for a in cand])
    a = cand[int(counts.argmax())]
    inl = rotation_angle_deg(rel, a.expand_as(rel)) < inlier_deg
    u, _, vt = torch.linalg.svd(rel[inl].double().mean(0))
    d = torch.sign(torch.linalg.det(u @ vt))
    return (u @ torch.diag(torch.tensor([1.0, 1.0, float(d)], dtype=torch.float64)) @ vt).float()


def pose_errors(r_est: torch.Tensor, r_true: torch.Tensor, t_est: Tensorish | None = None,
                t_true: Tensorish | None = None) -> dict:
    """Rotation errors of found poses against known ones after the best global rotation, allowing the mirror hand
    (a reconstruction's hand is arbitrary: the mirrored volume's poses are ``M R M``, ``M = diag(1, 1, −1)``);
    translation errors in pixels when both shifts are given (after the reconstruction's own offset in its box;
    ``trans_raw_median_px`` before). ``frame`` is the matrix with
    ``V_ref(q) = V_est(q @ frame)`` in Fourier space (:func:`~.model.decode_hartley` takes it)."""
    r_est = torch.as_tensor(np.asarray(r_est, np.float32))
    r_true = torch.as_tensor(np.asarray(r_true, np.float32))
    best = None
    for mirrored in (False, True):
        r = MIRROR @ r_est @ MIRROR if mirrored else r_est
        a = _frame(r, r_true)
        aligned = r @ a.T
        ang = rotation_angle_deg(aligned, r_true)
        if best is None or float(ang.median()) < best[0]:
            best = (float(ang.median()), mirrored, ang, rotation_frobenius(aligned, r_true), a @ MIRROR if mirrored else a)
    assert best is not None
    _, mirrored, ang, fro, frame = best
    # images: V_ref(k @ R_ref) = V_est(k @ R_est) = V_est(k @ R_ref @ A) (M·R·M for the mirror: V_est(q @ M) has
    # those poses), so V_ref(q) = V_est(q @ frame)
    out = {"n": len(ang), "mirrored_hand": mirrored, "frame": frame.tolist(), "rot_median_deg": float(ang.median()),
           "rot_mean_deg": float(ang.mean()), "rot_median_frobenius": float(fro.median()),
           "fraction_within_10deg": float((ang < 10).float().mean())}
    if t_est is not None and t_true is not None:
        # a reconstruction may also sit shifted by s in its box: image i then shifts by (R_i s)[:2] (the slice at
        # k @ R_i of a phase ramp e^{-2πi q·s}); fit s on the images whose rotation is right, report the rest
        d = np.asarray(t_est, np.float64) - np.asarray(t_true, np.float64)
        rows = r_true.double().numpy()[:, :2, :]  # (N, 2, 3)
        sel = (ang < 20).numpy() if int((ang < 20).sum()) >= 3 else np.ones(len(d), bool)
        s = np.linalg.lstsq(rows[sel].reshape(-1, 3), d[sel].reshape(-1), rcond=None)[0]
        res = np.linalg.norm(d - rows @ s, axis=1)
        out.update({"trans_median_px": float(np.median(res)), "trans_mean_px": float(res.mean()),
                    "trans_raw_median_px": float(np.median(np.linalg.norm(d, axis=1))),
                    "volume_offset_px": [float(x) for x in s]})
    return out
