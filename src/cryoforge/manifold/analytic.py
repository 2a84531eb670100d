"""An analytic manifold for tests and demos: a hinge of Gaussian blobs whose shape follows ``z`` in closed form.

``z[0]`` opens the hinge (the arm turns about the box centre by ``75°·tanh(z[0])``), ``z[1]`` swells the
arm's tip (radius ``× (1 + 0.5·tanh(z[1]))``), every further coordinate ``k`` lifts a small satellite
blob along +z by ``tanh(z[k])`` times a quarter box. The data latents lie on a noisy arc, so a graph
path through them differs from a straight line.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np
import torch

from ..geometry import centred_grid
from ..latent import Manifold

if TYPE_CHECKING:
    from ..hints import Device



class AnalyticManifold(Manifold):
    """A closed-form manifold (blobs that move with z): the explorer's demo and the tests' fixture."""

    kind = "analytic"

    def __init__(self, latent_dim: int = 2, box: int = 32, voxel_size: float = 4.0, n_data: int = 300, seed: int = 0,
                 device: Device = "cpu") -> None:
        super().__init__(device)
        if not (1 <= latent_dim <= 64) or not (8 <= box <= 256):
            raise ValueError(f"the analytic manifold takes 1 ≤ latent_dim ≤ 64 and 8 ≤ box ≤ 256; got latent_dim "
                             f"{latent_dim}, box {box}")
        self.latent_dim, self.box, self.voxel_size = int(latent_dim), int(box), float(voxel_size)
        self.name = f"analytic hinge (d={latent_dim})"
        rng = np.random.default_rng(seed)
        t = rng.uniform(-1, 1, n_data)
        pts = np.zeros((n_data, latent_dim), np.float32)
        pts[:, 0] = 2 * t
        if latent_dim > 1:
            pts[:, 1] = 1.5 * (1 - 2 * t ** 2)  # an arc: the straight chord leaves the data
        pts += 0.08 * rng.standard_normal(pts.shape)
        self.data_latents = pts.astype(np.float32)
        self.data_labels = [f"point {i}" for i in range(n_data)]
        self._grid = centred_grid((box,) * 3).to(self.device)  # (D, D, D, 3) voxels from the centre, (x, y, z)

    def blobs(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Centres ``(B, K, 3)`` in voxels (x, y, z), radii ``(B, K)`` and weights ``(B, K)`` of the blobs."""
        n, b = self.box, len(z)
        th = torch.tanh(z)
        angle = math.radians(75.0) * th[:, 0]
        arm = 0.28 * n
        base = torch.tensor([-0.18 * n, 0.0, 0.0]).expand(b, 3)
        elbow = torch.zeros(b, 3)
        tip = torch.stack([arm * torch.cos(angle), arm * torch.sin(angle), torch.zeros(b)], 1)
        centres = [base, elbow, tip]
        radii = [torch.full((b,), 0.09 * n), torch.full((b,), 0.07 * n),
                 0.07 * n * (1 + 0.5 * (th[:, 1] if self.latent_dim > 1 else torch.zeros(b)))]
        for k in range(2, self.latent_dim):
            lift = 0.25 * n * th[:, k]
            centres.append(torch.stack([torch.full((b,), -0.18 * n), torch.full((b,), 0.2 * n), lift], 1))
            radii.append(torch.full((b,), 0.05 * n))
        c = torch.stack(centres, 1)
        r = torch.stack(radii, 1)
        return c, r, torch.ones_like(r)

    def _decode(self, z: torch.Tensor) -> torch.Tensor:
        c, r, w = (t.to(z.device) for t in self.blobs(z.cpu()))
        d2 = (self._grid[None, None] - c[:, :, None, None, None]).pow(2).sum(-1)  # (B, K, D, D, D)
        return (w[..., None, None, None] * torch.exp(-d2 / (2 * r[..., None, None, None] ** 2))).sum(1)
