"""Fast local normalised cross-correlation (Roseman 2003; the score of pytom-match-pick, STOPGAP and Warp) of a
template with a tomogram tile, for a batch of rotations at once.

For a template ``t`` rotated by ``R`` (:mod:`cryoforge.conventions`: ``t_R(p) = t(Rᵀ p)``), filtered by the
tomogram's transfer ``W`` (missing wedge × CTF × detector MTF, applied after the rotation: the wedge is fixed in the
tomogram's frame) and normalised under the mask ``M`` (zero mean, unit norm over ``M``), the score of a particle
centred on voxel ``p`` is

``C(p) = Σ_x t̂_R(x) V(p + x) / (√ΣM · σ_M(p))``,   ``σ_M(p)² = (M ⋆ V²)(p)/ΣM − ((M ⋆ V)(p)/ΣM)²``

so ``C = 1`` where the tomogram holds ``a·t_R + b`` under the mask, whatever ``a > 0`` and ``b``. Every sum over
``x`` is one product of spectra: the template, centred on the tile's voxel 0 (wrapped), is Fourier transformed
at the tile's size, its conjugate multiplied by the tile's precomputed spectrum, and the product inverse
transformed — one forward and one inverse real FFT per rotation. A spherical mask is the same at every rotation,
so ``σ_M`` is computed once per tile; a mask given as a map rotates with the template and costs one forward and two
inverse FFTs more per rotation.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch

from ..geometry import transform_volumes

if TYPE_CHECKING:
    from collections.abc import Sequence


def good_fft_size(n: int) -> int:
    """The smallest ``m ≥ n`` whose prime factors are 2, 3 and 5 (the sizes FFT libraries are fastest at)."""
    m = max(1, n)
    while True:
        k = m
        for p in (2, 3, 5):
            while k % p == 0:
                k //= p
        if k == 1:
            return m
        m += 1


class WrappedPad:
    """A ``(B, *shape)`` buffer holding ``(B, n, n, n)`` boxes with their centre voxel ``n // 2`` on voxel 0 (the
    rest wrapped around the edges), rewritten in place: the boxes always land on the same eight corner blocks, so the
    zeros elsewhere are written once."""

    def __init__(self, batch: int, shape: Sequence[int], n: int, device: torch.device) -> None:
        if any(s < n for s in shape):
            raise ValueError(f"a tile of {tuple(shape)} voxels is smaller than the template box {n}")
        self.buf = torch.zeros((batch, *shape), device=device)
        c = n // 2
        self.pieces = []  # (source slice, destination slice) per axis: [c, n) → [0, n - c), [0, c) → [S - c, S)
        for s in shape:
            self.pieces.append(((slice(c, n), slice(0, n - c)), (slice(0, c), slice(s - c, s))))

    def fill(self, boxes: torch.Tensor) -> torch.Tensor:
        b = boxes.shape[0]
        for sz, dz in self.pieces[0]:
            for sy, dy in self.pieces[1]:
                for sx, dx in self.pieces[2]:
                    self.buf[:b, dz, dy, dx] = boxes[:, sz, sy, sx]
        return self.buf[:b]


@dataclass
class TileSpectra:
    """A tile's spectrum and the local standard deviation under a rotation-invariant mask (None: the mask rotates)."""

    shape: tuple[int, int, int]
    ft: torch.Tensor  # rfftn of the tile (its mean subtracted)
    ft2: torch.Tensor | None  # rfftn of the tile squared (only for a rotating mask)
    denom: torch.Tensor | None  # √ΣM · σ_M(p) for a spherical mask


def _local_denominator(mask_ft: torch.Tensor, tile_ft: torch.Tensor, tile2_ft: torch.Tensor, shape: Sequence[int],
                       msum: torch.Tensor, floor: float) -> torch.Tensor:
    """``√ΣM · σ_M(p)`` from the mask's spectrum (``(B|1, …)``), with ``floor`` where the tile is flat (padding)."""
    conj = mask_ft.conj()
    mean = torch.fft.irfftn(conj * tile_ft, s=shape, dim=(-3, -2, -1)) / msum
    sq = torch.fft.irfftn(conj * tile2_ft, s=shape, dim=(-3, -2, -1)) / msum
    var = (sq - mean * mean).clamp_min(0)
    return torch.sqrt(var * msum).clamp_min(floor)


class FLCC:
    """Scores of one template (``(n, n, n)``, at the tomogram's voxel size) under ``mask`` against tomogram tiles.

    ``transfer``: the tomogram's signal transfer on the template's rfft grid ``(n, n, n//2+1)`` (None: none);
    ``spherical``: the mask is rotation-invariant (computed once per tile)."""

    def __init__(self, template: torch.Tensor, mask: torch.Tensor, transfer: torch.Tensor | None,
                 spherical: bool, batch: int, device: torch.device) -> None:
        self.n = template.shape[-1]
        self.template, self.mask = template.to(device).float(), mask.to(device).float()
        self.transfer = None if transfer is None else transfer.to(device).float()
        self.spherical, self.batch, self.device = spherical, batch, device
        self._pads: dict[tuple[int, ...], tuple[WrappedPad, WrappedPad | None]] = {}

    def prepare(self, tile: torch.Tensor) -> TileSpectra:
        """The spectra of a tile ``(Z, Y, X)`` (padding included) for :meth:`scores`."""
        shape = tuple(int(s) for s in tile.shape)
        tile = tile.to(self.device).float()
        tile = tile - tile.mean()
        ft = torch.fft.rfftn(tile, dim=(-3, -2, -1))
        ft2 = torch.fft.rfftn(tile * tile, dim=(-3, -2, -1))
        floor = 1e-3 * float(tile.std()) * float(self.mask.sum()) ** 0.5 + 1e-12
        self._floor = floor
        if shape not in self._pads:
            self._pads = {shape: (WrappedPad(self.batch, shape, self.n, self.device),
                                  None if self.spherical else WrappedPad(self.batch, shape, self.n, self.device))}
        if not self.spherical:
            return TileSpectra(shape, ft, ft2, None)  # type: ignore[arg-type]
        pad = WrappedPad(1, shape, self.n, self.device)
        m_ft = torch.fft.rfftn(pad.fill(self.mask[None]), dim=(-3, -2, -1))
        denom = _local_denominator(m_ft, ft, ft2, shape, self.mask.sum(), floor)[0]
        return TileSpectra(shape, ft, None, denom)  # type: ignore[arg-type]

    def templates(self, rotations: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The rotated, filtered templates normalised under their (rotated) masks ``(B, n, n, n)``, and the masks."""
        b = rotations.shape[0]
        rot = rotations.to(self.device).float()
        t = transform_volumes(self.template.expand(b, -1, -1, -1), rot)
        m = self.mask.expand(b, -1, -1, -1) if self.spherical else transform_volumes(self.mask.expand(b, -1, -1, -1),
                                                                                    rot).clamp(0, 1)
        if self.transfer is not None:
            t = torch.fft.irfftn(torch.fft.rfftn(t, dim=(-3, -2, -1)) * self.transfer, s=t.shape[-3:],
                                 dim=(-3, -2, -1))
        msum = m.sum((-3, -2, -1), keepdim=True)
        mean = (t * m).sum((-3, -2, -1), keepdim=True) / msum
        tn = (t - mean) * m
        tn = tn / tn.pow(2).sum((-3, -2, -1), keepdim=True).sqrt().clamp_min(1e-20)
        return tn, m

    def scores(self, spectra: TileSpectra, rotations: torch.Tensor) -> torch.Tensor:
        """``C(p)`` ``(B, Z, Y, X)`` of the tile for each rotation ``(B, 3, 3)`` (B ≤ the batch)."""
        tn, m = self.templates(rotations)
        tpad, mpad = self._pads[spectra.shape]
        t_ft = torch.fft.rfftn(tpad.fill(tn), dim=(-3, -2, -1))
        t_ft = torch.conj_physical_(t_ft).mul_(spectra.ft)  # in place: a lazy conj() × ft took 2× as long
        cc = torch.fft.irfftn(t_ft, s=spectra.shape, dim=(-3, -2, -1))
        if spectra.denom is not None:
            return cc.div_(spectra.denom)
        assert mpad is not None and spectra.ft2 is not None
        m_ft = torch.fft.rfftn(mpad.fill(m), dim=(-3, -2, -1))
        denom = _local_denominator(m_ft, spectra.ft, spectra.ft2, spectra.shape,
                                   m.sum((-3, -2, -1), keepdim=True), self._floor)
        return cc.div_(denom)
