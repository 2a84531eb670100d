"""Particle images as cryoDRGN trains on them: centred Hartley transforms on the odd ``(D+1)²`` lattice.

Images stay memory-mapped (a batch's pages released once read); each batch is windowed (soft circle, cryoDRGN's ``window_r`` 0.85), transformed,
symmetrised (last row/column = first, the Nyquist wrap) and divided by one global scale (``norm``, the std of
the transformed images, as cryoDRGN's ``dataset_args.norm``). Poses follow cryoDRGN's convention: a particle with
rotation ``R`` is the slice of the volume at lattice coordinates ``k @ R``; translations are in pixels.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import torch

from ..io.mrc import read_rows
from ..latent import ManifoldError
from .model import centred_hartley, lattice_coords

if TYPE_CHECKING:
    from typing import Any

    from ..hints import ArrayLike, Tensorish



def ht2_center(img: torch.Tensor) -> torch.Tensor:
    """Centred 2-D Hartley transform over the last two axes (DC at ``D//2``)."""
    return centred_hartley(img, 2)


def symmetrize(ht: torch.Tensor) -> torch.Tensor:
    """``(…, D, D)`` → ``(…, D+1, D+1)``: the last row and column repeat the first (−Nyquist = +Nyquist)."""
    ht = torch.cat([ht, ht[..., :1, :]], -2)
    return torch.cat([ht, ht[..., :, :1]], -1)


def soft_window(D: int, inner: float = 0.85, outer: float = 0.99) -> torch.Tensor:
    """Real-space window: 1 inside ``inner``·D/2, a cosine fall to 0 at ``outer``·D/2."""
    ax = (torch.arange(D) - D // 2) / (D / 2)
    r = torch.sqrt(ax[:, None] ** 2 + ax[None] ** 2)
    t = ((r - inner) / (outer - inner)).clamp(0, 1)
    return 0.5 * (1 + torch.cos(np.pi * t))


class ParticleImages:
    """A stack ``(N, D, D)`` (memory-mapped arrays work) with optional poses, shifts and CTF per image.

    ``pixel_size`` (Å) is one number, or one per image (optics groups of different pixel sizes): each image's CTF
    uses its own; the decoded volumes are on the first image's grid.
    """

    def __init__(self, images: Tensorish, rotations: Tensorish | None = None, translations: ArrayLike | None = None,
                 ctf: Any = None, pixel_size: float | np.ndarray = 1.0,
                 invert: bool = False, window: bool = True, norm: tuple[float, float] | None = None) -> None:
        shape = np.shape(images)
        if len(shape) != 3 or shape[1] != shape[2]:
            raise ManifoldError(f"particle images must be a stack (N, D, D) of square images, got {shape}")
        if shape[1] % 2:
            raise ManifoldError(f"cryoDRGN images have an even size D; got {shape[1]}")
        self.images, self.n, self.D = images, shape[0], shape[1]
        self.rot = None if rotations is None else torch.as_tensor(np.asarray(rotations, np.float32))
        self.trans = None if translations is None else torch.as_tensor(np.asarray(translations, np.float32))
        for name, arr, want in (("rotations", self.rot, (3, 3)), ("translations", self.trans, (2,))):
            if arr is not None and (len(arr) != self.n or tuple(arr.shape[1:]) != want):
                raise ManifoldError(f"{name}: expected ({self.n}, {', '.join(map(str, want))}) for {self.n} images, "
                                    f"got {tuple(arr.shape)}")
        sizes = np.broadcast_to(np.asarray(pixel_size, np.float64), (self.n,))
        self.ctf, self.pixel_sizes, self.pixel_size, self.invert = ctf, sizes, float(sizes[0]), invert
        self.window = soft_window(self.D) if window else None
        lat = lattice_coords(self.D + 1)[self.D // 2]  # the central plane: (D+1, D+1, 3), k = (x, y, 0)
        self.coords = lat.reshape(-1, 3)
        r = self.coords[:, :2].norm(dim=1)
        self.mask = r <= 0.5  # the lattice points trained on (the inscribed circle)
        self.mask[len(self.mask) // 2] = False  # ignore the DC term
        self.norm = norm or (0.0, self._scale())

    def _scale(self) -> float:
        idx = np.linspace(0, self.n - 1, min(self.n, 1000)).astype(int)
        return float(self.hartley(idx, normalise=False).std())

    def hartley(self, idx: Tensorish, normalise: bool = True) -> torch.Tensor:
        """Symmetrised Hartley images ``(B, (D+1)²)`` of images ``idx`` (normalised by ``norm``)."""
        x = torch.as_tensor(read_rows(self.images, idx))  # memory bounded by the batch, not by the images read so far
        if self.invert:
            x = -x
        if self.window is not None:
            x = x * self.window
        h = symmetrize(ht2_center(x)).flatten(1)
        return (h - self.norm[0]) / self.norm[1] if normalise else h

    def ctf_values(self, idx: Tensorish) -> torch.Tensor | None:
        """CTF ``(B, (D+1)²)`` on the centred lattice, or None without CTF parameters."""
        if self.ctf is None:
            return None
        from ..ctf import CTFParams, ctf_2d

        p = CTFParams(**{k: np.broadcast_to(np.asarray(v), (self.n,))[idx] for k, v in self.ctf.items()})
        px = self.pixel_sizes[np.asarray(idx)]
        c = ctf_2d(p, (self.D, self.D), px[0] if np.all(px == px[0]) else px, rfft=False, fftshift=True)
        return symmetrize(c.reshape(len(idx), self.D, self.D)).flatten(1)


def translate_ht(h: torch.Tensor, t: torch.Tensor, coords: torch.Tensor) -> torch.Tensor:
    """Shift Hartley images ``(B, P)`` on a point-symmetric set of lattice points ``coords`` ``(P, 3)`` (listed so
    that reversing the order maps k to −k) by ``t`` ``(B, 2)`` pixels: ``H'(k) = cos(2πk·t)H(k) + sin(2πk·t)H(−k)``."""
    phase = 2 * np.pi * t @ coords[:, :2].T  # (B, P): lattice coordinates are cycles per pixel
    return torch.cos(phase) * h + torch.sin(phase) * h.flip(-1)


def backproject(data: ParticleImages, idx: Tensorish | None = None, batch: int = 64) -> torch.Tensor:
    """Direct Fourier reconstruction with known poses (nearest lattice voxel, averaged; ``cryodrgn backproject_voxel``
    in spirit): a ``(D, D, D)`` volume in the same frame and units as the decoders' volumes."""
    from .model import ihtn_center

    if data.rot is None:
        raise ManifoldError("backprojection needs poses")
    D = data.D
    idx = np.arange(data.n) if idx is None else np.asarray(idx)
    acc, cnt = torch.zeros(D ** 3), torch.zeros(D ** 3)
    plane = data.coords.view(D + 1, D + 1, 3)[:-1, :-1].reshape(-1, 3)
    keep = plane[:, :2].norm(dim=1) <= 0.5
    for s in range(0, len(idx), batch):
        b = idx[s:s + batch]
        h = data.hartley(b).view(len(b), D + 1, D + 1)[:, :-1, :-1].reshape(len(b), -1)
        if data.trans is not None:
            h = translate_ht(h, data.trans[b], plane)
        k = plane @ data.rot[b]  # (B, P, 3)
        v = (torch.round(k * D).long() + D // 2)
        ok = ((v >= 0) & (v < D)).all(-1) & keep
        flat = (v[..., 2] * D * D + v[..., 1] * D + v[..., 0])[ok]
        acc.index_add_(0, flat, h[ok])
        cnt.index_add_(0, flat, torch.ones(len(flat)))
    return ihtn_center((acc / cnt.clamp_min(1)).view(D, D, D) * data.norm[1] + data.norm[0])
