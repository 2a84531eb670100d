"""The ``Manifold`` protocol: one interface over every generative model of volumes.

A manifold maps latent points ``z`` of shape ``(B, latent_dim)`` to volumes ``(B, D, D, D)``
(``(Z, Y, X)`` each, see :mod:`cryoforge.conventions`) with a voxel size in Å. It may also
``encode`` volumes back to latent points (the 3D-WGAN's regressor does), and it may carry the
latent points of its data (cryoDRGN's ``z.pkl``; the known complexes for the WGAN) with labels.
The latent explorer, the movie writer and the analysis functions only use this interface.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import torch

from .conventions import as_tensor

if TYPE_CHECKING:
    from .hints import Tensorish



class ManifoldError(ValueError):
    """A latent point, path or model file that a manifold cannot use; the message says why."""


class Manifold:
    """Base class; subclasses set ``name``, ``latent_dim``, ``box``, ``voxel_size`` and implement ``_decode``."""

    name: str = "manifold"
    kind: str = "manifold"
    latent_dim: int = 1
    box: int = 32
    voxel_size: float = 1.0
    data_latents: np.ndarray | None = None  # (N, latent_dim) latent points of the data, if any
    data_labels: list[str] | None = None  # a label per data point (structure name, image index…)
    decode_batch: int = 8  # volumes per forward pass (bounds memory: D=64 at 8 is 8 MB of output)

    def __init__(self, device: str | torch.device = "cpu") -> None:
        self.device = torch.device(device)

    # -- latent points
    def check_z(self, z: Tensorish) -> torch.Tensor:
        """``z`` as float32 ``(B, latent_dim)``; a single point may be given as ``(latent_dim,)``."""
        t = as_tensor(z, torch.float32)
        if t.ndim == 1:
            t = t[None]
        if t.ndim != 2 or t.shape[1] != self.latent_dim:
            raise ManifoldError(f"{self.name}: latent points must have {self.latent_dim} coordinates "
                                f"(shape (B, {self.latent_dim})), got shape {tuple(t.shape)}")
        if not torch.isfinite(t).all():
            raise ManifoldError(f"{self.name}: latent points contain NaN or inf")
        return t

    def origin(self) -> np.ndarray:
        """A sensible first point: the mean of the data latents, else zero."""
        if self.data_latents is not None and len(self.data_latents):
            return np.asarray(self.data_latents, dtype=np.float32).mean(0)
        return np.zeros(self.latent_dim, np.float32)

    def sample(self, n: int, seed: int) -> np.ndarray:
        """``n`` latent points: drawn from the data latents when there are some, else from N(0, I)."""
        rng = np.random.default_rng(seed)
        if self.data_latents is not None and len(self.data_latents):
            idx = rng.choice(len(self.data_latents), size=min(n, len(self.data_latents)), replace=False)
            return np.asarray(self.data_latents, np.float32)[idx]
        return rng.standard_normal((n, self.latent_dim)).astype(np.float32)

    # -- decoding
    @torch.no_grad()
    def decode(self, z: Tensorish) -> torch.Tensor:
        """Volumes ``(B, D, D, D)`` float32 on the CPU for latent points ``z`` ``(B, latent_dim)``."""
        z = self.check_z(z)
        out = [self._decode(chunk.to(self.device)).float().cpu() for chunk in z.split(self.decode_batch)]
        return torch.cat(out)

    def decode_one(self, z: Tensorish) -> np.ndarray:
        """One volume ``(D, D, D)`` as a numpy array."""
        return self.decode(z)[0].numpy()

    def _decode(self, z: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    # -- optional encoder
    @property
    def can_encode(self) -> bool:
        return type(self)._encode is not Manifold._encode

    @torch.no_grad()
    def encode(self, volumes: Tensorish) -> np.ndarray:
        """Latent points ``(B, latent_dim)`` of volumes ``(B, D, D, D)`` (models with an encoder only)."""
        if not self.can_encode:
            raise ManifoldError(f"{self.name}: this kind of model ({self.kind}) has no encoder")
        v = torch.as_tensor(np.asarray(volumes, np.float32))
        v = v[None] if v.ndim == 3 else v
        if v.ndim != 4 or v.shape[-3:] != (self.box,) * 3:
            raise ManifoldError(f"{self.name}: encode takes ({self.box},)*3 volumes, got {tuple(v.shape)}")
        return self._encode(v.to(self.device)).float().cpu().numpy()

    def _encode(self, volumes: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def describe(self) -> str:
        data = f", {len(self.data_latents)} data points" if self.data_latents is not None else ""
        return (f"{self.name} ({self.kind}): latent dim {self.latent_dim}, {self.box}³ at {self.voxel_size:g} Å"
                f"{data}{', encoder' if self.can_encode else ''}")
