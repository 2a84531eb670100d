"""The 3D-WGAN of the hypothesis tests (:mod:`cryoforge.hyptest`) as a :class:`Manifold`.

``decode`` is the generator, rescaled from ``[-1, 1]`` to ``[0, 1]``. A regressor checkpoint adds ``encode``
(the inverse generator), and with a known-template set the templates' codes become the data latents, labelled
by name: the explorer can then start at one known complex and walk to another (seed 000's proteasome → ribosome).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import torch

from ..latent import Manifold, ManifoldError
from .train import Regressor

if TYPE_CHECKING:
    from collections.abc import Sequence

    from ..hints import Device, PathLike, Tensorish



class WGANManifold(Manifold):
    """The 3D-WGAN generator (and optional regressor) as a manifold; the known templates' codes are its data."""

    kind = "wgan3d"

    def __init__(self, path: PathLike, templates: tuple[Tensorish, Sequence[str], float] | None = None,
                 device: Device = "cpu",
                 payload: dict | None = None) -> None:
        """``payload``: the checkpoint when the caller has read it already (it is read once)."""
        from ..io.checkpoint import load_checkpoint
        from .train import REGRESSOR_KIND, generator_from, regressor_from

        super().__init__(device)
        payload = payload if payload is not None else load_checkpoint(path)
        self.reg: Regressor | None = None
        if payload["kind"] == REGRESSOR_KIND:
            self.gen, self.reg = regressor_from(payload, path, device)
        else:
            self.gen = generator_from(payload, path, device)
        self.latent_dim, self.box = self.gen.cfg.zdim, self.gen.cfg.box
        self.voxel_size = float(payload["config"].get("voxel_size", 12.0))
        self.name = f"3D-WGAN {getattr(path, 'name', str(path).rsplit('/', 1)[-1])}"
        self.structures = list(payload["config"].get("structures", []))
        self.decode_batch = 32
        if templates is not None:
            self.set_templates(*templates)

    def set_templates(self, maps: Tensorish, names: Sequence[str], voxel_size: float | None = None) -> None:
        """Known complexes ``(K, n, n, n)``: their regressor codes become the labelled data latents."""
        from .wgan import to_unit

        if voxel_size:
            self.voxel_size = float(voxel_size)
        if self.reg is None or np.shape(maps)[-1] != self.box:
            return
        with torch.no_grad():
            codes = self._encode(to_unit(torch.as_tensor(np.asarray(maps, np.float32))).to(self.device))
        self.data_latents = codes.cpu().numpy()
        self.data_labels = list(names)

    @property
    def can_encode(self) -> bool:
        return self.reg is not None

    def _decode(self, z: torch.Tensor) -> torch.Tensor:
        self.gen.eval()
        return (self.gen(z) + 1) / 2

    def _encode(self, volumes: torch.Tensor) -> torch.Tensor:
        """Codes of volumes; inputs in ``[0, 1]`` (decoded volumes) or ``[-1, 1]`` (:func:`to_unit` maps) both work
        because the regressor sees them as the generator's ``[-1, 1]`` range."""
        if self.reg is None:
            raise ManifoldError(f"{self.name} has no regressor: it cannot encode volumes")
        reg = self.reg
        v = volumes if volumes.min() < -0.01 else volumes * 2 - 1
        return torch.cat([reg(c) for c in v.split(64)])

